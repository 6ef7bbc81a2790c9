# lib/rpc called by Python grpcio stubs generated from proto/ at test time.
iotca_add_script_test(NAME e2e_rpc_grpcio
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/test_rpc_grpcio.py
          $<TARGET_FILE:rpc_test_server> ${CMAKE_SOURCE_DIR}
  TIMEOUT 120 LABELS e2e)
