# packaging/install_service.cmake: run by `cmake --install` (and so by cpack) to install the
# example config and the systemd unit. It runs at install time because where they go depends
# on the prefix chosen then: prefix /usr (the Debian package) means /etc/warren and
# /lib/systemd/system, any other prefix means <prefix>/etc/warren and <prefix>/lib/systemd/system.
# Set by the install(CODE) before it: WARREN_PACKAGING_DIR, WARREN_BINARY_DIR, WARREN_SBINDIR_RELATIVE.
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(WARREN_CONFDIR "/etc/warren")
  set(unit_dir "/lib/systemd/system")
else()
  set(WARREN_CONFDIR "${CMAKE_INSTALL_PREFIX}/etc/warren")
  set(unit_dir "${CMAKE_INSTALL_PREFIX}/lib/systemd/system")
endif()
set(WARREN_SBINDIR "${CMAKE_INSTALL_PREFIX}/${WARREN_SBINDIR_RELATIVE}")
configure_file("${WARREN_PACKAGING_DIR}/warren.service.in" "${WARREN_BINARY_DIR}/warren.service" @ONLY)
file(INSTALL "${WARREN_BINARY_DIR}/warren.service" DESTINATION "${unit_dir}"
     FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
file(INSTALL "${WARREN_PACKAGING_DIR}/warren.conf" DESTINATION "${WARREN_CONFDIR}"
     FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
