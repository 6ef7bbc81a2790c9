# lib/svc: helpers the gRPC service handlers share (etcd + JSON + paging).
target_sources(iotca PRIVATE ${CMAKE_CURRENT_LIST_DIR}/svc.c
  ${CMAKE_CURRENT_LIST_DIR}/svc_main.c)
target_link_libraries(iotca PUBLIC PkgConfig::JANSSON)
