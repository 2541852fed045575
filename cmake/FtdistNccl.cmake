# NCCL: prefer the one shipped with the PyTorch install (the library LibTorch itself loads, so one
# NCCL per process), else the CUDA toolkit's. Sets FTDIST_NCCL_ENABLED and target ftdist_nccl.
set(FTDIST_NCCL_ENABLED OFF)
if(FTDIST_CUDA_ENABLED AND NOT FTDIST_NCCL STREQUAL "OFF")
  execute_process(
    COMMAND "${FTDIST_PYTHON}" -c "import nvidia.nccl, os; print(os.path.dirname(nvidia.nccl.__file__) if nvidia.nccl.__file__ else list(nvidia.nccl.__path__)[0])"
    OUTPUT_VARIABLE _ftdist_wheel_nccl OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  find_path(FTDIST_NCCL_INCLUDE_DIR nccl.h
    HINTS "${_ftdist_wheel_nccl}/include" ${CUDAToolkit_INCLUDE_DIRS} "${CUDAToolkit_LIBRARY_ROOT}/include"
    PATHS /usr/local/cuda/include /usr/local/include /usr/include)
  find_library(FTDIST_NCCL_LIBRARY NAMES nccl libnccl.so.2 NAMES_PER_DIR
    HINTS "${_ftdist_wheel_nccl}/lib" ${CUDAToolkit_LIBRARY_DIR} "${CUDAToolkit_LIBRARY_ROOT}/lib"
    PATHS /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/lib/x86_64-linux-gnu)
  if(FTDIST_NCCL_INCLUDE_DIR AND FTDIST_NCCL_LIBRARY)
    set(FTDIST_NCCL_ENABLED ON)
    add_library(ftdist_nccl INTERFACE)
    target_include_directories(ftdist_nccl SYSTEM INTERFACE "${FTDIST_NCCL_INCLUDE_DIR}")
    target_link_libraries(ftdist_nccl INTERFACE "${FTDIST_NCCL_LIBRARY}")
    target_compile_definitions(ftdist_nccl INTERFACE FTDIST_WITH_NCCL=1)
    message(STATUS "ftdist: NCCL ${FTDIST_NCCL_LIBRARY} (headers ${FTDIST_NCCL_INCLUDE_DIR})")
  endif()
endif()
if(FTDIST_NCCL STREQUAL "ON" AND NOT FTDIST_NCCL_ENABLED)
  message(FATAL_ERROR "ftdist: FTDIST_NCCL=ON but nccl.h / libnccl were not found (or FTDIST_CUDA is off)")
endif()
