# Cross toolchain for 64-bit ARM boards (Debian arm64), GCC 12.
#   cmake -S . -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=cross/aarch64-linux-gnu.cmake \
#         -DFERRY_SYSROOT=/path/to/sysroot
# The sysroot holds the target's -dev packages unpacked with `apt-get download` + `dpkg -x`
# (see cross/README.md): librocksdb-dev, libyaml-cpp-dev and libsimdjson-dev are not
# multi-arch co-installable, so they cannot be installed as :arm64 next to the native ones.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(FERRY_TRIPLE aarch64-linux-gnu)
include(${CMAKE_CURRENT_LIST_DIR}/common.cmake)
