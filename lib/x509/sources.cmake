# lib/x509: certificate parsing and checks (OpenSSL 3).
target_sources(iotca PRIVATE ${CMAKE_CURRENT_LIST_DIR}/x509.c)
target_link_libraries(iotca PUBLIC OpenSSL::Crypto)
