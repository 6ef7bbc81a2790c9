/*
 * echo_service.h - the iotca.test.Echo service used to test lib/rpc.
 */
#ifndef IOTCA_TEST_ECHO_SERVICE_H
#define IOTCA_TEST_ECHO_SERVICE_H

#include "rpc/rpc.h"

/* Registers every Echo method on srv. echo_max_request caps Echo only. */
iotca_err echo_service_register(iotca_rpc_server *srv, size_t echo_max_request,
                                iotca_errbuf *eb);

#endif
