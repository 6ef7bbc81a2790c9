/*
 * service.c - the Association method table.
 */
#include "association.h"

/* An upload carries up to 4 MiB of CSV; the server accepts 8 MiB so that a
 * larger file is answered with INVALID_ARGUMENT, not refused unread. */
#define UPLOAD_MAX_REQUEST (ASSOC_CSV_MAX + (64u << 10))
#define OTHER_MAX_REQUEST  (64u << 10)

typedef struct assoc_method {
	const char *name;
	iotca_rpc_handler_fn fn;
	size_t max_request;
	unsigned flags;
} assoc_method;

static const assoc_method assoc_methods[] = {
    {"CreateProduct", assoc_create_product, OTHER_MAX_REQUEST, 0},
    {"GetProduct", assoc_get_product, OTHER_MAX_REQUEST, 0},
    {"ListProducts", assoc_list_products, OTHER_MAX_REQUEST, 0},
    {"GetCsvTemplate", assoc_get_template, OTHER_MAX_REQUEST, 0},
    {"UploadAssociations", assoc_upload, UPLOAD_MAX_REQUEST, 0},
    {"ListAssociations", assoc_list, OTHER_MAX_REQUEST, 0},
    {"GetAssociation", assoc_get, OTHER_MAX_REQUEST, 0},
    {"DeleteAssociation", assoc_delete, OTHER_MAX_REQUEST, 0},
    {"UpdateDeviceStatus", assoc_update_device_status, OTHER_MAX_REQUEST, 0},
    /* Inline: answered from the device index, deferred to a worker (an
     * etcd read) on a miss. */
    {"ResolveDevice", assoc_resolve_device, OTHER_MAX_REQUEST,
     IOTCA_RPC_INLINE},
    /* Inline: answered from memory under a mutex, never blocks. */
    {"ListDeviceChanges", assoc_list_device_changes, OTHER_MAX_REQUEST,
     IOTCA_RPC_INLINE},
};

iotca_err
assoc_register(assoc_svc *a, iotca_rpc_server *srv, iotca_errbuf *eb)
{
	size_t i;
	iotca_err rc;

	for (i = 0; i < sizeof(assoc_methods) / sizeof(assoc_methods[0]); i++)
		if ((rc = iotca_rpc_server_register(
		         srv, &iotca__v1__association__descriptor,
		         assoc_methods[i].name, assoc_methods[i].fn, a,
		         assoc_methods[i].flags, assoc_methods[i].max_request,
		         eb)) != IOTCA_OK)
			return rc;
	return IOTCA_OK;
}
