# The etcd v3 client (JSON gateway over libcurl, jansson, OpenSSL base64).
# Included by lib/CMakeLists.txt. libiotca is static, so whatever links it
# needs curl, jansson and libcrypto too: hence PUBLIC.
target_sources(iotca PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/etcd.c
  ${CMAKE_CURRENT_LIST_DIR}/etcd_json.c
  ${CMAKE_CURRENT_LIST_DIR}/watch.c
)
target_link_libraries(iotca PUBLIC PkgConfig::CURL PkgConfig::JANSSON OpenSSL::Crypto)
