# Every RPC of the contract without credentials, with revoked or unknown
# keys, with the wrong kind of credential, with oversize fields; and
# another account's objects seen as NOT_FOUND.
iotca_add_script_test(NAME e2e_security
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/test_security.py
  TIMEOUT 300 LABELS e2e
  ENVIRONMENT "IOTCA_BUILD_DIR=${CMAKE_BINARY_DIR}")
