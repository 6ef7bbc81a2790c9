/*
 * cmd_account.c - iotca account create | list (operator token).
 */
#include "cli.h"
#include "iotca/v1/registry.pb-c.h"

static int
account_create_run(cli_ctx *ctx, const cli_args *a)
{
	Iotca__V1__CreateAccountRequest req =
	    IOTCA__V1__CREATE_ACCOUNT_REQUEST__INIT;

	req.name = (char *)a->pos[0];
	return cli_call_print(ctx, CLI_REGISTRY, "CreateAccount", &req.base);
}

static const out_column account_columns[] = {
    {"ID", "id"},
    {"NAME", "name"},
    {"CREATED_AT", "created_at"},
};

static int
account_list_run(cli_ctx *ctx, const cli_args *a)
{
	Iotca__V1__ListAccountsRequest req =
	    IOTCA__V1__LIST_ACCOUNTS_REQUEST__INIT;

	return cli_list(ctx, a, CLI_REGISTRY, "ListAccounts", &req.base,
	                "accounts", account_columns,
	                CLI_COUNT(account_columns));
}

static const cli_opt account_list_opts[] = {CLI_OPTS_PAGING};

static const cli_verb account_verbs[] = {
    {"create", "NAME", "Create a tenant account",
     "NAME: 1-64 characters of letters, digits and _.-, unique among "
     "accounts.\nThe account starts without an API key: create one with "
     "'iotca key create'.\nNeeds the operator token.",
     NULL, 0, 1, 1, account_create_run},
    {"list", "[--page-size N] [--page-token TOKEN] [--all]",
     "List the tenant accounts", "Needs the operator token.", account_list_opts,
     CLI_COUNT(account_list_opts), 0, 0, account_list_run},
};

const cli_group cmd_account_group = {"account",
                                     "Tenant accounts (operator token).",
                                     account_verbs, CLI_COUNT(account_verbs)};
