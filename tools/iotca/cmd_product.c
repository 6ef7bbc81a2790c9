/*
 * cmd_product.c - iotca product create | list | show: the account's
 * products (tenant API key).
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "iotca/v1/association.pb-c.h"

/* Maps a choice option ("--net-type lorawan") to its enum value; *out
 * keeps its value when the option is not given. */
static int
product_choice(const cli_args *a, const char *opt, const char *const *names,
               const int *values, size_t n, const char *choices, int *out)
{
	const char *v = cli_arg(a, opt);
	size_t i;

	if (v == NULL)
		return CLI_EXIT_OK;
	for (i = 0; i < n; i++)
		if (strcmp(v, names[i]) == 0) {
			*out = values[i];
			return CLI_EXIT_OK;
		}
	fprintf(stderr,
	        "iotca %s: --%s: '%s' is not one of %s; see 'iotca %s "
	        "--help'\n",
	        a->path, opt, v, choices, a->path);
	return CLI_EXIT_USAGE;
}

static int
product_create_run(cli_ctx *ctx, const cli_args *a)
{
	static const char *const net_names[] = {"mqtt", "lorawan"};
	static const int net_values[] = {IOTCA__V1__NET_TYPE__NET_TYPE_MQTT,
	                                 IOTCA__V1__NET_TYPE__NET_TYPE_LORAWAN};
	static const char *const auth_names[] = {"x509", "secret"};
	static const int auth_values[] = {
	    IOTCA__V1__AUTH_MODE__AUTH_MODE_X509_CERTIFICATE,
	    IOTCA__V1__AUTH_MODE__AUTH_MODE_DEVICE_SECRET};
	Iotca__V1__CreateProductRequest req =
	    IOTCA__V1__CREATE_PRODUCT_REQUEST__INIT;
	int net = IOTCA__V1__NET_TYPE__NET_TYPE_MQTT;
	int auth = IOTCA__V1__AUTH_MODE__AUTH_MODE_X509_CERTIFICATE;
	int rc;

	if ((rc = product_choice(a, "net-type", net_names, net_values,
	                         CLI_COUNT(net_names), "mqtt, lorawan",
	                         &net)) != CLI_EXIT_OK ||
	    (rc = product_choice(a, "auth-mode", auth_names, auth_values,
	                         CLI_COUNT(auth_names), "x509, secret",
	                         &auth)) != CLI_EXIT_OK)
		return rc;
	req.name = (char *)cli_arg(a, "name");
	req.net_type = (Iotca__V1__NetType)net;
	req.auth_mode = (Iotca__V1__AuthMode)auth;
	/* proto3's default is false: the CLI's default is a private CA. */
	req.use_private_ca = !cli_flag(a, "no-private-ca");
	rc = cli_call_print(ctx, CLI_ASSOCIATION, "CreateProduct", &req.base);
	if (ctx->last_err == IOTCA_EPRECOND && req.use_private_ca &&
	    (net != IOTCA__V1__NET_TYPE__NET_TYPE_MQTT ||
	     auth != IOTCA__V1__AUTH_MODE__AUTH_MODE_X509_CERTIFICATE))
		fprintf(stderr,
		        "iotca: a LoRaWAN or device-secret product "
		        "cannot use a private CA: add --no-private-ca\n");
	return rc;
}

static const out_column product_columns[] = {
    {"PRODUCT_KEY", "product_key"}, {"NAME", "name"},
    {"AUTH_MODE", "auth_mode"},     {"PRIVATE_CA", "use_private_ca"},
    {"NET_TYPE", "net_type"},       {"CREATED_AT", "created_at"},
};

static int
product_list_run(cli_ctx *ctx, const cli_args *a)
{
	Iotca__V1__ListProductsRequest req =
	    IOTCA__V1__LIST_PRODUCTS_REQUEST__INIT;

	return cli_list(ctx, a, CLI_ASSOCIATION, "ListProducts", &req.base,
	                "products", product_columns,
	                CLI_COUNT(product_columns));
}

static int
product_show_run(cli_ctx *ctx, const cli_args *a)
{
	Iotca__V1__GetProductRequest req = IOTCA__V1__GET_PRODUCT_REQUEST__INIT;

	req.product_key = (char *)a->pos[0];
	return cli_call_print(ctx, CLI_ASSOCIATION, "GetProduct", &req.base);
}

static const cli_opt product_create_opts[] = {
    {"name", "NAME", "4-30 characters of letters, digits and _-@()", 1, 0},
    {"net-type", "TYPE", "mqtt (default) or lorawan", 0, 0},
    {"auth-mode", "MODE", "x509 (default) or secret (device secret)", 0, 0},
    {"no-private-ca", NULL, "devices do not use certificates from your own CA",
     0, 0},
};

static const cli_opt product_list_opts[] = {CLI_OPTS_PAGING};

static const cli_verb product_verbs[] = {
    {"create",
     "--name NAME [--net-type mqtt|lorawan] [--auth-mode x509|secret] "
     "[--no-private-ca]",
     "Create a product and print its ProductKey",
     "By default the product's devices connect over MQTT and authenticate "
     "with X.509\ncertificates issued by your own CA (see 'iotca ca "
     "register'): the only kind of\nproduct that can have device "
     "associations ('iotca assoc upload'). A LoRaWAN\nor device-secret "
     "product needs --no-private-ca. NAME is unique in the account.",
     product_create_opts, CLI_COUNT(product_create_opts), 0, 0,
     product_create_run},
    {"list", "[--page-size N] [--page-token TOKEN] [--all]",
     "List the account's products", NULL, product_list_opts,
     CLI_COUNT(product_list_opts), 0, 0, product_list_run},
    {"show", "PRODUCT_KEY", "Show one product", NULL, NULL, 0, 1, 1,
     product_show_run},
};

const cli_group cmd_product_group = {"product",
                                     "The account's products (tenant API "
                                     "key).",
                                     product_verbs, CLI_COUNT(product_verbs)};
