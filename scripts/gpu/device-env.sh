# Sourced on a GPU machine where the CUDA libraries r1 links (cuBLAS, cuRAND, the runtime)
# live in a Python wheel's folder or the toolkit rather than on the loader's path.
for lib in libcublas.so.13 libcurand.so.10 libcudart.so.13 libcublas.so.12 libcurand.so.10 libcudart.so.12; do
  d=$(find /usr/local /usr/lib /opt -name "$lib" 2>/dev/null | head -1)
  [ -n "$d" ] && case ":${LD_LIBRARY_PATH:-}:" in *":$(dirname "$d"):"*) ;; *) export LD_LIBRARY_PATH="$(dirname "$d")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;; esac
done
