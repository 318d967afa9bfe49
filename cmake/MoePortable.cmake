# MOE_PORTABLE (option in the top-level CMakeLists.txt; scripts/gpu-build.sh turns it on): every
# executable runs on a bare CUDA image, i.e. the NVIDIA driver, glibc >= 2.35 and no Debian -dev
# packages (scripts/gpu-check.sh runs them there). When it is on:
#   - fmt is header-only: every CMakeLists links moe::fmt (below), never fmt::fmt, since Debian
#     ships only libfmt.so;
#   - the pkg-config libraries (zstd, liburing, xxhash, pcre2-8, utf8proc) are linked as their .a
#     files: find them with moe_pkg_check_modules, not pkg_check_modules;
#   - every executable links libstdc++/libgcc statically and kernels/cuda/glibc_compat.c (see
#     there): moe_portable_executables() at the end of the top-level CMakeLists.txt.
# cudart is static in every build (CUDA::cudart_static). cuBLAS stays shared: there is no static
# cuBLAS in this toolkit (scripts/gpu-build.sh says more). Off (the default), nothing changes.

# fmt: compiled library (default) or header-only (portable).
add_library(moe_fmt INTERFACE)
add_library(moe::fmt ALIAS moe_fmt)
if(MOE_PORTABLE)
  target_link_libraries(moe_fmt INTERFACE fmt::fmt-header-only)
else()
  target_link_libraries(moe_fmt INTERFACE fmt::fmt)
endif()

# moe_pkg_check_modules(PREFIX module): pkg_check_modules(PREFIX REQUIRED IMPORTED_TARGET module),
# which makes PkgConfig::PREFIX; with MOE_PORTABLE the target links the static library.
macro(moe_pkg_check_modules _moe_prefix _moe_module)
  # find_library caches the paths it found (pkgcfg_lib_PREFIX_name): forget them, so that turning
  # MOE_PORTABLE on or off in an existing build folder takes effect.
  get_cmake_property(_moe_cache_vars CACHE_VARIABLES)
  foreach(_moe_var IN LISTS _moe_cache_vars)
    if(_moe_var MATCHES "^pkgcfg_lib_${_moe_prefix}_")
      unset(${_moe_var} CACHE)
    endif()
  endforeach()
  if(MOE_PORTABLE)
    set(_moe_suffixes "${CMAKE_FIND_LIBRARY_SUFFIXES}")
    set(CMAKE_FIND_LIBRARY_SUFFIXES .a)
  endif()
  pkg_check_modules(${_moe_prefix} REQUIRED IMPORTED_TARGET ${_moe_module})
  if(MOE_PORTABLE)
    set(CMAKE_FIND_LIBRARY_SUFFIXES "${_moe_suffixes}")
    foreach(_moe_lib IN LISTS ${_moe_prefix}_LINK_LIBRARIES)
      if(NOT _moe_lib MATCHES "\\.a$")
        message(FATAL_ERROR "MOE_PORTABLE: no static library for ${_moe_module} (got '${_moe_lib}')")
      endif()
    endforeach()
    # Flags a static link needs besides the library (Libs.private: zstd's -pthread).
    if(${_moe_prefix}_STATIC_LDFLAGS_OTHER)
      set_property(TARGET PkgConfig::${_moe_prefix} APPEND PROPERTY
                   INTERFACE_LINK_OPTIONS ${${_moe_prefix}_STATIC_LDFLAGS_OTHER})
    endif()
  endif()
endmacro()

# moe_portable_executable(target): libstdc++/libgcc static, and glibc_compat.c so that the static
# libstdc++ (GCC 12's calls arc4random, glibc >= 2.36) loads on glibc 2.35.
function(moe_portable_executable target)
  target_sources(${target} PRIVATE ${PROJECT_SOURCE_DIR}/kernels/cuda/glibc_compat.c)
  target_link_options(${target} PRIVATE -static-libstdc++ -static-libgcc)
endfunction()

# moe_portable_executables(): with MOE_PORTABLE, moe_portable_executable on every executable
# defined so far in this directory and below (call it last, from the top-level CMakeLists.txt).
function(moe_portable_executables)
  if(NOT MOE_PORTABLE)
    return()
  endif()
  set(dirs ${CMAKE_CURRENT_SOURCE_DIR})
  while(dirs)
    list(POP_FRONT dirs dir)
    get_property(targets DIRECTORY ${dir} PROPERTY BUILDSYSTEM_TARGETS)
    foreach(t IN LISTS targets)
      get_target_property(type ${t} TYPE)
      if(type STREQUAL "EXECUTABLE")
        moe_portable_executable(${t})
      endif()
    endforeach()
    get_property(subdirs DIRECTORY ${dir} PROPERTY SUBDIRECTORIES)
    list(APPEND dirs ${subdirs})
  endwhile()
endfunction()
