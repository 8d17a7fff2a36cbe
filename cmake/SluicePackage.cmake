# What `cmake --install build --prefix P` puts under P, and the CMake package
# that lets an out-of-tree program use it:
#
#   P/include/sluice/*.h             the public headers (standard library only)
#   P/lib/libsluice.so.0.1.0         every layer library, whole, in one shared
#        (and .so.0, .so links)      library; RUNPATH $ORIGIN
#   P/lib/libduckdb.so               beside it, so nothing points back here
#   P/bin/sluice                     the CLI; RUNPATH $ORIGIN/../lib
#   P/lib/cmake/sluice/              sluiceConfig.cmake, sluiceConfigVersion.cmake,
#                                    sluiceTargets*.cmake: the target sluice::sluice
#
#   find_package(sluice 0.1 CONFIG REQUIRED)
#   target_link_libraries(app PRIVATE sluice::sluice)
#
# The per-layer static libraries (sluice_core, ...) stay internal: the CLI and
# the tests link them directly, and only libsluice.so is installed. Nothing
# installed names a path of the build or source tree, so the prefix can be
# given at install time and the installed tree can be moved.
#
# Included by the top-level CMakeLists.txt after the layers and the CLI are
# defined.
include(CMakePackageConfigHelpers)

# --- the layers that make up libsluice.so ----------------------------------
set(SLUICE_SHARED_LAYERS sluice_core sluice_engine sluice_io sluice_sources sluice_destinations sluice_state
                         sluice_service)
# src/config/ (ConfigTable, Registry, Pipeline: what a program that embeds
# sluice calls) is its own layer.
if(EXISTS "${PROJECT_SOURCE_DIR}/src/config")
  if(NOT TARGET sluice_config)
    message(FATAL_ERROR "src/config/ exists but there is no sluice_config target: define it with "
                        "sluice_layer(config ...) before cmake/SluicePackage.cmake is included, so that "
                        "libsluice.so holds the public API that src/config/ implements")
  endif()
  list(APPEND SLUICE_SHARED_LAYERS sluice_config)
endif()

# The layers of `layers` that `layer` links directly (aliases resolved).
function(sluice_direct_layer_deps out layer layers)
  get_target_property(items ${layer} LINK_LIBRARIES)
  set(deps "")
  foreach(item IN LISTS items)
    if(TARGET "${item}")
      get_target_property(aliased "${item}" ALIASED_TARGET)
      if(aliased)
        set(item "${aliased}")
      endif()
      if(item IN_LIST layers)
        list(APPEND deps "${item}")
      endif()
    endif()
  endforeach()
  set(${out} "${deps}" PARENT_SCOPE)
endfunction()

# Orders the layers so that each comes before every layer it links. Linked
# --whole-archive in that order, CMake names each archive once; in any other
# order it repeats an archive to satisfy the dependency, and a second
# --whole-archive copy of it defines every symbol twice.
function(sluice_layer_link_order out)
  set(layers ${ARGN})
  foreach(layer IN LISTS layers)
    get_target_property(type ${layer} TYPE)
    get_target_property(pic ${layer} POSITION_INDEPENDENT_CODE)
    if(NOT type STREQUAL "STATIC_LIBRARY" OR NOT pic)
      message(FATAL_ERROR "${layer}: libsluice.so is built from the layers' static libraries, which must be "
                          "STATIC with POSITION_INDEPENDENT_CODE ON (sluice_layer() makes them so)")
    endif()
  endforeach()
  set(remaining ${layers})
  set(ordered "")
  while(remaining)
    # Next: the layers that no remaining layer links.
    set(used "")
    foreach(layer IN LISTS remaining)
      sluice_direct_layer_deps(deps ${layer} "${remaining}")
      list(APPEND used ${deps})
    endforeach()
    set(next "")
    foreach(layer IN LISTS remaining)
      if(NOT layer IN_LIST used)
        list(APPEND next ${layer})
      endif()
    endforeach()
    if(NOT next)
      message(FATAL_ERROR "The layers ${remaining} link each other in a cycle; libsluice.so needs them "
                          "in an order where each comes before the layers it uses")
    endif()
    list(APPEND ordered ${next})
    list(REMOVE_ITEM remaining ${next})
  endwhile()
  set(${out} "${ordered}" PARENT_SCOPE)
endfunction()

sluice_layer_link_order(SLUICE_SHARED_LINK_ORDER ${SLUICE_SHARED_LAYERS})

# --- libsluice.so ------------------------------------------------------------
# The target is sluice_shared because `sluice` is the CLI; the file is
# libsluice.so and the exported name sluice::sluice. Its code is all in the
# layer archives: the one source only gives the target something to compile.
file(CONFIGURE OUTPUT "${PROJECT_BINARY_DIR}/libsluice/libsluice.cc"
     CONTENT "// libsluice.so is the sluice layer libraries linked whole (cmake/SluicePackage.cmake).\n")
add_library(sluice_shared SHARED "${PROJECT_BINARY_DIR}/libsluice/libsluice.cc")
add_library(sluice::sluice ALIAS sluice_shared)
set_target_properties(sluice_shared PROPERTIES
  OUTPUT_NAME sluice
  EXPORT_NAME sluice
  VERSION ${PROJECT_VERSION}
  SOVERSION ${PROJECT_VERSION_MAJOR}
  # libduckdb.so is installed beside it.
  INSTALL_RPATH "$ORIGIN")
list(JOIN SLUICE_SHARED_LINK_ORDER "," SLUICE_SHARED_LINK_ORDER_CSV)
target_link_libraries(sluice_shared PRIVATE "$<LINK_LIBRARY:WHOLE_ARCHIVE,${SLUICE_SHARED_LINK_ORDER_CSV}>")
# The layers also reach the link line through each other (sluice_engine
# links sluice_core); take those occurrences whole too, or CMake refuses the
# same archive with and without a feature.
foreach(layer IN LISTS SLUICE_SHARED_LINK_ORDER)
  set_property(TARGET sluice_shared PROPERTY LINK_LIBRARY_OVERRIDE_${layer} WHOLE_ARCHIVE)
endforeach()
if(CMAKE_SYSTEM_NAME STREQUAL "Linux")
  # Every symbol the layers use must come from a library libsluice.so names,
  # so a consumer's link never fails on something missing in here.
  target_link_options(sluice_shared PRIVATE "LINKER:--no-undefined")
endif()
# What a consumer gets: the public headers (standard library only, C++20)
# and threads; the layers' own dependencies stay private to libsluice.so.
target_include_directories(sluice_shared PUBLIC
  $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
  $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
target_compile_features(sluice_shared PUBLIC cxx_std_20)
target_link_libraries(sluice_shared PUBLIC Threads::Threads)

# --- install -----------------------------------------------------------------
install(TARGETS sluice_shared EXPORT sluiceTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY "${PROJECT_SOURCE_DIR}/include/sluice" DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  FILES_MATCHING PATTERN "*.h")
install(IMPORTED_RUNTIME_ARTIFACTS duckdb::duckdb LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})

# The CLI keeps linking the static layers (it runs from the build tree for the
# system tests); installed, it finds libduckdb.so in the lib directory.
file(RELATIVE_PATH SLUICE_BIN_TO_LIB "${CMAKE_INSTALL_FULL_BINDIR}" "${CMAKE_INSTALL_FULL_LIBDIR}")
set_target_properties(sluice PROPERTIES INSTALL_RPATH "$ORIGIN/${SLUICE_BIN_TO_LIB}")
install(TARGETS sluice RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# --- the CMake package -------------------------------------------------------
set(SLUICE_CMAKE_DIR "${CMAKE_INSTALL_LIBDIR}/cmake/sluice")
install(EXPORT sluiceTargets NAMESPACE sluice:: DESTINATION "${SLUICE_CMAKE_DIR}")
configure_package_config_file("${PROJECT_SOURCE_DIR}/cmake/sluiceConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/package/sluiceConfig.cmake"
  INSTALL_DESTINATION "${SLUICE_CMAKE_DIR}"
  PATH_VARS CMAKE_INSTALL_INCLUDEDIR)
write_basic_package_version_file("${PROJECT_BINARY_DIR}/package/sluiceConfigVersion.cmake"
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMajorVersion)
install(FILES "${PROJECT_BINARY_DIR}/package/sluiceConfig.cmake"
              "${PROJECT_BINARY_DIR}/package/sluiceConfigVersion.cmake"
  DESTINATION "${SLUICE_CMAKE_DIR}")
