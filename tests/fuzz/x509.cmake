# Certificate bytes (PEM, DER, junk) through all of lib/x509, and the first
# 100 bytes through the SN normaliser. Seeds: small EC P-256 certificates
# made with openssl and edge cases, in corpus/fuzz_x509/.
iotca_add_fuzz(NAME fuzz_x509 SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_x509.c LIBS iotca)
