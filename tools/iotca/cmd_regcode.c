/*
 * cmd_regcode.c - iotca regcode [--rotate]: the account's registration
 * code, the CN of validation certificates (tenant API key).
 */
#include "cli.h"
#include "iotca/v1/registry.pb-c.h"

static int
regcode_run(cli_ctx *ctx, const cli_args *a)
{
	Iotca__V1__GetRegistrationCodeRequest get =
	    IOTCA__V1__GET_REGISTRATION_CODE_REQUEST__INIT;
	Iotca__V1__RotateRegistrationCodeRequest rot =
	    IOTCA__V1__ROTATE_REGISTRATION_CODE_REQUEST__INIT;

	if (cli_flag(a, "rotate"))
		return cli_call_print(ctx, CLI_REGISTRY,
		                      "RotateRegistrationCode", &rot.base);
	return cli_call_print(ctx, CLI_REGISTRY, "GetRegistrationCode",
	                      &get.base);
}

static const cli_opt regcode_opts[] = {
    {"rotate", NULL, "issue a new random code; the old one stops working", 0,
     0},
};

static const cli_verb regcode_verbs[] = {
    {NULL, "[--rotate]", "Show (or rotate) the account's registration code",
     "A validation certificate carries the registration code as its "
     "Common Name and\nis signed by the CA's key, e.g.:\n"
     "  openssl genrsa -out verificationCert.key 2048\n"
     "  openssl req -new -key verificationCert.key -subj \"/CN=<code>\" "
     "\\\n    -out verificationCert.csr\n"
     "  openssl x509 -req -in verificationCert.csr -CA yourCA.cer \\\n"
     "    -CAkey yourPrivateKey.key -CAcreateserial "
     "-out verificationCert.crt \\\n    -days 300 -sha512\n"
     "Rotating does not affect CA certificates already registered. Needs "
     "an API key.",
     regcode_opts, CLI_COUNT(regcode_opts), 0, 0, regcode_run},
};

const cli_group cmd_regcode_group = {
    "regcode", "The account's registration code (tenant API key).",
    regcode_verbs, CLI_COUNT(regcode_verbs)};
