# The etcd client's tests. test_etcd starts a real etcd (tests/support/
# etcd_proc.c); test_etcd_json needs none and is a unit test, registered here
# so that the etcd module's tests are declared in one place.
iotca_add_test(NAME test_etcd
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_etcd.c
  TIMEOUT 180
  LABELS integration)
iotca_add_test(NAME test_etcd_json
  SOURCES ${CMAKE_SOURCE_DIR}/tests/unit/test_etcd_json.c
  TIMEOUT 60
  LABELS unit)
