# Every etcd reply parser, fed the same bytes (seeds: replies captured from
# etcd 3.4.23 in corpus/fuzz_etcd_reply/).
iotca_add_fuzz(NAME fuzz_etcd_reply
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_etcd_reply.c
  LIBS iotca)
