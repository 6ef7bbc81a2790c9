# lib/rpc: the gRPC server and client (the only module that includes gRPC).
target_sources(iotca PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/server.c
  ${CMAKE_CURRENT_LIST_DIR}/health.c
  ${CMAKE_CURRENT_LIST_DIR}/client.c
  ${CMAKE_CURRENT_LIST_DIR}/tls.c)
target_link_libraries(iotca PUBLIC PkgConfig::GRPC iotca_proto OpenSSL::SSL OpenSSL::Crypto)
