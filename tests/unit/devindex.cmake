# services/association/devindex.c (included by the test): lookups, order of
# changes, write-through and tombstones, currency, growth. No etcd.
iotca_add_test(NAME test_devindex
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_devindex.c
          ${PROJECT_SOURCE_DIR}/services/registry/feed.c
  LIBS iotca iotca_proto LABELS unit)
