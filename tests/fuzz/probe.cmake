# Any bytes through the lib/probe request parser, whole and every prefix
# (need-more, then one stable answer), and through the Prometheus text
# helper. Seeds: requests as kube-probe, Prometheus and curl send them,
# and malformed ones, in corpus/fuzz_probe/.
iotca_add_fuzz(NAME fuzz_probe SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_probe.c LIBS iotca)
