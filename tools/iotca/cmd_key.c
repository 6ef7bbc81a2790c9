/*
 * cmd_key.c - iotca key create | revoke: tenant API keys (operator token).
 */
#include <stdio.h>

#include "cli.h"
#include "iotca/v1/registry.pb-c.h"

static int
key_create_run(cli_ctx *ctx, const cli_args *a)
{
	Iotca__V1__CreateApiKeyRequest req =
	    IOTCA__V1__CREATE_API_KEY_REQUEST__INIT;
	int rc;

	req.account_id = (char *)cli_arg(a, "account");
	if (cli_arg(a, "description") != NULL)
		req.description = (char *)cli_arg(a, "description");
	rc = cli_call_print(ctx, CLI_REGISTRY, "CreateApiKey", &req.base);
	if (rc == CLI_EXIT_OK)
		fprintf(stderr,
		        "iotca: keep the api_key now: it cannot be shown "
		        "again (the server stores only its hash).\n");
	return rc;
}

static int
key_revoke_run(cli_ctx *ctx, const cli_args *a)
{
	Iotca__V1__RevokeApiKeyRequest req =
	    IOTCA__V1__REVOKE_API_KEY_REQUEST__INIT;
	ProtobufCMessage *resp;
	int rc;

	req.key_id = (char *)a->pos[0];
	if ((rc = cli_call(ctx, CLI_REGISTRY, "RevokeApiKey", &req.base,
	                   &resp)) != CLI_EXIT_OK)
		return rc;
	protobuf_c_message_free_unpacked(resp, NULL);
	if (ctx->json)
		return cli_print_json(json_pack("{s:s, s:b}", "key_id",
		                                req.key_id, "revoked", 1));
	printf("API key %s revoked.\n", req.key_id);
	return CLI_EXIT_OK;
}

static const cli_opt key_create_opts[] = {
    {"account", "ID", "the account the key acts for", 1, 0},
    {"description", "TEXT",
     "note for humans, at most 128 printable ASCII characters", 0, 0},
};

static const cli_verb key_verbs[] = {
    {"create", "--account ID [--description TEXT]",
     "Create an API key for an account and print it once",
     "The secret (api_key) is printed only now: the server keeps a hash "
     "and cannot\nshow it again. Give it to the tenant, who uses it as "
     "IOTCA_TOKEN. An account may\nhold several keys (for rotation). "
     "Needs the operator token.",
     key_create_opts, CLI_COUNT(key_create_opts), 0, 0, key_create_run},
    {"revoke", "KEY_ID", "Revoke an API key",
     "KEY_ID is the key_id printed by 'iotca key create' (not the "
     "secret). Every\nservice refuses the key within a few seconds. Needs "
     "the operator token.",
     NULL, 0, 1, 1, key_revoke_run},
};

const cli_group cmd_key_group = {"key", "Tenant API keys (operator token).",
                                 key_verbs, CLI_COUNT(key_verbs)};
