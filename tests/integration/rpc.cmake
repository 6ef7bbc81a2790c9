# lib/rpc tests: a C server with the iotca.test.Echo service, called by the
# C client in-process and by Python grpcio from tests/e2e.
set(IOTCA_TEST_PROTO_DIR ${CMAKE_SOURCE_DIR}/tests/proto)
add_custom_command(
  OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/iotca/test/echo.pb-c.c
         ${CMAKE_CURRENT_BINARY_DIR}/iotca/test/echo.pb-c.h
  COMMAND ${PROTOC_C} --proto_path=${IOTCA_TEST_PROTO_DIR}
          --c_out=${CMAKE_CURRENT_BINARY_DIR}
          ${IOTCA_TEST_PROTO_DIR}/iotca/test/echo.proto
  DEPENDS ${IOTCA_TEST_PROTO_DIR}/iotca/test/echo.proto VERBATIM)
add_library(iotca_test_echo STATIC
  ${CMAKE_CURRENT_BINARY_DIR}/iotca/test/echo.pb-c.c
  ${CMAKE_CURRENT_SOURCE_DIR}/echo_service.c)
target_include_directories(iotca_test_echo PUBLIC
  ${CMAKE_CURRENT_BINARY_DIR} ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(iotca_test_echo PUBLIC iotca PkgConfig::PROTOBUFC)

add_executable(rpc_test_server ${CMAKE_CURRENT_SOURCE_DIR}/rpc_test_server.c)
target_link_libraries(rpc_test_server PRIVATE iotca_test_echo iotca_warnings)

iotca_add_test(NAME test_rpc SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_rpc.c
  LIBS iotca_test_echo TIMEOUT 120 LABELS integration)
set_tests_properties(test_rpc PROPERTIES ENVIRONMENT
  "IOTCA_MAKE_CERTS=${CMAKE_SOURCE_DIR}/tests/support/make-grpc-certs.sh")
