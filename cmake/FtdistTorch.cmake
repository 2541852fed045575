# LibTorch: the one inside the PyTorch wheel of the project's virtual environment (.venv, made by
# scripts/setup.sh), or of FTDIST_PYTHON (for example a preinstalled PyTorch on a GPU machine).
# Sets FTDIST_CUDA_ENABLED and FTDIST_TORCH_CUDA_VERSION.
if(NOT FTDIST_PYTHON)
  if(EXISTS "${CMAKE_SOURCE_DIR}/.venv/bin/python")
    set(FTDIST_PYTHON "${CMAKE_SOURCE_DIR}/.venv/bin/python")
  else()
    find_program(FTDIST_PYTHON NAMES python3 python REQUIRED)
  endif()
endif()
set(FTDIST_PYTHON "${FTDIST_PYTHON}" CACHE FILEPATH "Python whose PyTorch provides LibTorch")

execute_process(
  COMMAND "${FTDIST_PYTHON}" -c
    "import torch; print(torch.utils.cmake_prefix_path); print(torch.version.cuda or '')"
  OUTPUT_VARIABLE _ftdist_torch_out
  ERROR_VARIABLE _ftdist_torch_err
  RESULT_VARIABLE _ftdist_torch_rc
  OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT _ftdist_torch_rc EQUAL 0)
  message(FATAL_ERROR
    "ftdist: cannot import torch with ${FTDIST_PYTHON}: ${_ftdist_torch_err}\n"
    "Run scripts/setup.sh (it installs the pinned PyTorch into .venv), or pass -DFTDIST_PYTHON=<python with torch>.")
endif()
string(REPLACE "\n" ";" _ftdist_torch_lines "${_ftdist_torch_out}")
list(GET _ftdist_torch_lines 0 FTDIST_TORCH_PREFIX)
list(LENGTH _ftdist_torch_lines _ftdist_n)
set(FTDIST_TORCH_CUDA_VERSION "")
if(_ftdist_n GREATER 1)
  list(GET _ftdist_torch_lines 1 FTDIST_TORCH_CUDA_VERSION)
endif()

set(_ftdist_want_cuda OFF)
if(FTDIST_CUDA STREQUAL "AUTO")
  if(FTDIST_TORCH_CUDA_VERSION)
    set(_ftdist_want_cuda ON)
  endif()
elseif(FTDIST_CUDA)
  if(NOT FTDIST_TORCH_CUDA_VERSION)
    message(FATAL_ERROR "ftdist: FTDIST_CUDA=ON but the LibTorch of ${FTDIST_PYTHON} was built without CUDA")
  endif()
  set(_ftdist_want_cuda ON)
endif()

if(FTDIST_TORCH_CUDA_VERSION AND _ftdist_want_cuda)
  # A CUDA-enabled LibTorch needs the CUDA toolkit to configure; one runtime per process, so the
  # toolkit's major version must be the one LibTorch was built with.
  find_package(CUDAToolkit QUIET)
  if(NOT CUDAToolkit_FOUND)
    if(FTDIST_CUDA STREQUAL "AUTO")
      message(STATUS "ftdist: LibTorch has CUDA ${FTDIST_TORCH_CUDA_VERSION} but no CUDA toolkit was found: GPU code off")
      set(_ftdist_want_cuda OFF)
    else()
      message(FATAL_ERROR
        "ftdist: FTDIST_CUDA=ON but no CUDA toolkit was found (LibTorch uses CUDA ${FTDIST_TORCH_CUDA_VERSION}). "
        "Install the CUDA ${FTDIST_TORCH_CUDA_VERSION} toolkit or configure with -DFTDIST_CUDA=OFF.")
    endif()
  else()
    string(REGEX MATCH "^[0-9]+" _ftdist_torch_cuda_major "${FTDIST_TORCH_CUDA_VERSION}")
    if(NOT CUDAToolkit_VERSION_MAJOR STREQUAL _ftdist_torch_cuda_major)
      message(FATAL_ERROR
        "ftdist: CUDA toolkit ${CUDAToolkit_VERSION} does not match the CUDA ${FTDIST_TORCH_CUDA_VERSION} LibTorch was "
        "built with (one CUDA runtime per process). Install a PyTorch built for CUDA ${CUDAToolkit_VERSION_MAJOR} "
        "(scripts/setup.sh pins one) or the matching toolkit, or configure with -DFTDIST_CUDA=OFF.")
    endif()
  endif()
endif()

add_library(ftdist_torch INTERFACE)
if(FTDIST_TORCH_CUDA_VERSION AND NOT _ftdist_want_cuda)
  # GPU code off, but the LibTorch is CUDA-enabled: Torch's CMake config would insist on the CUDA
  # toolkit, so describe its CPU libraries directly (they load their CUDA parts from the wheel).
  execute_process(
    COMMAND "${FTDIST_PYTHON}" -c
      "import os, torch; print(os.path.dirname(torch.__file__)); print(int(torch._C._GLIBCXX_USE_CXX11_ABI)); print(torch.__version__.split('+')[0])"
    OUTPUT_VARIABLE _ftdist_t OUTPUT_STRIP_TRAILING_WHITESPACE)
  string(REPLACE "\n" ";" _ftdist_t "${_ftdist_t}")
  list(GET _ftdist_t 0 _ftdist_torch_dir)
  list(GET _ftdist_t 1 _ftdist_abi)
  list(GET _ftdist_t 2 Torch_VERSION)
  foreach(lib torch torch_cpu c10)
    find_library(FTDIST_LIB_${lib} ${lib} PATHS "${_ftdist_torch_dir}/lib" NO_DEFAULT_PATH REQUIRED)
    target_link_libraries(ftdist_torch INTERFACE "${FTDIST_LIB_${lib}}")
  endforeach()
  target_include_directories(ftdist_torch SYSTEM INTERFACE
    "${_ftdist_torch_dir}/include" "${_ftdist_torch_dir}/include/torch/csrc/api/include")
  target_compile_definitions(ftdist_torch INTERFACE _GLIBCXX_USE_CXX11_ABI=${_ftdist_abi})
  target_link_options(ftdist_torch INTERFACE "LINKER:-rpath,${_ftdist_torch_dir}/lib")
  set(FTDIST_CUDA_ENABLED OFF)
  return()
endif()

if(_ftdist_want_cuda)
  if(NOT DEFINED TORCH_CUDA_ARCH_LIST)
    set(TORCH_CUDA_ARCH_LIST "9.0")
  endif()
  # Torch's config ignores (and warns about) CMAKE_CUDA_ARCHITECTURES; kernels/ sets it afterwards.
  unset(CMAKE_CUDA_ARCHITECTURES)
  unset(CMAKE_CUDA_ARCHITECTURES CACHE)
endif()

list(APPEND CMAKE_PREFIX_PATH "${FTDIST_TORCH_PREFIX}")
find_package(Torch REQUIRED CONFIG)
set(FTDIST_CUDA_ENABLED ${_ftdist_want_cuda})

# Torch's imported target carries its own flags (ABI, defines); TORCH_LIBRARIES is what we link.
target_link_libraries(ftdist_torch INTERFACE ${TORCH_LIBRARIES})
target_include_directories(ftdist_torch SYSTEM INTERFACE ${TORCH_INCLUDE_DIRS})
if(FTDIST_CUDA_ENABLED)
  target_compile_definitions(ftdist_torch INTERFACE FTDIST_WITH_CUDA=1)
  target_link_libraries(ftdist_torch INTERFACE CUDA::cudart)
endif()
