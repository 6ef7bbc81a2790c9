# lib/probe: HTTP/1.x endpoint for Kubernetes probes and Prometheus metrics.
target_sources(iotca PRIVATE ${CMAKE_CURRENT_LIST_DIR}/probe.c
                             ${CMAKE_CURRENT_LIST_DIR}/probe_http.c)
