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
} assoc_method;

static const assoc_method assoc_methods[] = {
    {"CreateProduct", assoc_create_product, OTHER_MAX_REQUEST},
    {"GetProduct", assoc_get_product, OTHER_MAX_REQUEST},
    {"ListProducts", assoc_list_products, OTHER_MAX_REQUEST},
    {"GetCsvTemplate", assoc_get_template, OTHER_MAX_REQUEST},
    {"UploadAssociations", assoc_upload, UPLOAD_MAX_REQUEST},
    {"ListAssociations", assoc_list, OTHER_MAX_REQUEST},
    {"GetAssociation", assoc_get, OTHER_MAX_REQUEST},
    {"DeleteAssociation", assoc_delete, OTHER_MAX_REQUEST},
    {"UpdateDeviceStatus", assoc_update_device_status, OTHER_MAX_REQUEST},
    {"ResolveDevice", assoc_resolve_device, OTHER_MAX_REQUEST},
};

iotca_err
assoc_register(assoc_svc *a, iotca_rpc_server *srv, iotca_errbuf *eb)
{
	size_t i;
	iotca_err rc;

	for (i = 0; i < sizeof(assoc_methods) / sizeof(assoc_methods[0]); i++)
		if ((rc = iotca_rpc_server_register(
		         srv, &iotca__v1__association__descriptor,
		         assoc_methods[i].name, assoc_methods[i].fn, a, 0,
		         assoc_methods[i].max_request, eb)) != IOTCA_OK)
			return rc;
	return IOTCA_OK;
}
