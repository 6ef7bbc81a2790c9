/*
 * service.c - the Registry method table.
 */
#include "registry.h"

/* Each method's request cap: room for two 64 KiB certificates and the
 * message around them. Over it: INVALID_ARGUMENT, the request unread. */
#define REG_MAX_REQUEST (256u << 10)

typedef struct reg_method {
	const char *name;
	iotca_rpc_handler_fn fn;
	unsigned flags;
} reg_method;

static const reg_method reg_methods[] = {
    {"CreateAccount", reg_create_account, 0},
    {"ListAccounts", reg_list_accounts, 0},
    {"CreateApiKey", reg_create_api_key, 0},
    {"RevokeApiKey", reg_revoke_api_key, 0},
    {"GetRegistrationCode", reg_get_regcode, 0},
    {"RotateRegistrationCode", reg_rotate_regcode, 0},
    {"RegisterCaCertificate", reg_register_ca, 0},
    {"GetCaCertificate", reg_get_ca, 0},
    {"ListCaCertificates", reg_list_cas, 0},
    {"UpdateCaCertificateStatus", reg_update_ca_status, 0},
    {"DeleteCaCertificate", reg_delete_ca, 0},
    /* Inline: answered from memory, deferred to a worker otherwise. */
    {"ResolveIssuer", reg_resolve_issuer, IOTCA_RPC_INLINE},
    /* Inline: answered from memory under a mutex, never blocks. */
    {"ListCaChanges", reg_list_ca_changes, IOTCA_RPC_INLINE},
};

iotca_err
registry_register(registry *r, iotca_rpc_server *srv, iotca_errbuf *eb)
{
	size_t i;
	iotca_err rc;

	for (i = 0; i < sizeof(reg_methods) / sizeof(reg_methods[0]); i++)
		if ((rc = iotca_rpc_server_register(
		         srv, &iotca__v1__registry__descriptor,
		         reg_methods[i].name, reg_methods[i].fn, r,
		         reg_methods[i].flags, REG_MAX_REQUEST, eb)) !=
		    IOTCA_OK)
			return rc;
	return IOTCA_OK;
}
