# bench/gpu_env.sh — sourced on a device machine that has no OpenMPI: unpacks the Debian packages
# carried in .debs/ (bench/gpu_fetch_debs.sh) into $FTDIST_DEPS (default /tmp/ftdist-deps; never
# into /) and points the build and mpirun at them: one OpenMPI and one set of libraries, the carried
# ones, also where the image has an OpenMPI of its own (it may lack toml++ or SentencePiece). Without
# .debs/ the installed OpenMPI and libraries are used.
#   source bench/gpu_env.sh
if ! ls .debs/*.deb >/dev/null 2>&1 && command -v mpirun >/dev/null 2>&1; then
  echo "gpu_env: using the installed $(command -v mpirun)"
else
  P="${FTDIST_DEPS:-/tmp/ftdist-deps}"
  ls .debs/*.deb >/dev/null 2>&1 || { echo "gpu_env: no mpirun and no .debs/ (run bench/gpu_fetch_debs.sh here and carry .debs)" >&2; return 1; }
  for f in .debs/*.deb; do dpkg -x "$f" "$P"; done
  # dpkg -x skips update-alternatives: the plain names are links made here.
  (cd "$P/usr/bin" && for t in mpirun mpiexec mpicxx mpicc; do [ -e "$t" ] || ln -s "$t.openmpi" "$t"; done)
  export PATH="$P/usr/bin:$PATH"
  export OPAL_PREFIX="$P/usr" CMAKE_PREFIX_PATH="$P/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  export PKG_CONFIG_PATH="$P/usr/lib/x86_64-linux-gnu/pkgconfig:$P/usr/share/pkgconfig"
  export CPATH="$P/usr/include" LIBRARY_PATH="$P/usr/lib/x86_64-linux-gnu"
  export LD_LIBRARY_PATH="$P/usr/lib/x86_64-linux-gnu:$P/lib/x86_64-linux-gnu:$P/usr/lib/x86_64-linux-gnu/openmpi/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  # One node, no ssh; Debian's MCA exclusions (in /etc, not moved by OPAL_PREFIX) set here instead.
  export OMPI_MCA_plm_rsh_agent=false OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader,tcp OMPI_MCA_mtl='^ofi,psm,psm2' \
    OMPI_MCA_osc='^ucx,pt2pt' OMPI_MCA_mca_base_component_show_load_errors=0 \
    PMIX_MCA_mca_base_component_path="$P/usr/lib/x86_64-linux-gnu/pmix2/lib/pmix"
  echo "gpu_env: OpenMPI from .debs in $P ($(mpirun --version 2>&1 | head -1))"
fi
export PATH="/usr/local/cuda/bin:$PATH"
