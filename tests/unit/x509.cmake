# lib/x509 against certificates the openssl command makes at test time.
iotca_add_test(NAME test_x509 SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_x509.c TIMEOUT 120 LABELS unit)
