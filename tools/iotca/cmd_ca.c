/*
 * cmd_ca.c - iotca ca register | list | show | enable | disable | delete:
 * the account's CA certificates (tenant API key).
 */
#include <stdio.h>

#include "cli.h"
#include "iotca/v1/registry.pb-c.h"

/* The contract's limit on each certificate input (PEM or DER). */
#define CA_CERT_MAX 65536

static int
ca_register_send(cli_ctx *ctx, const cli_args *a, const iotca_buf *cert,
                 const iotca_buf *ver)
{
	Iotca__V1__RegisterCaCertificateRequest req =
	    IOTCA__V1__REGISTER_CA_CERTIFICATE_REQUEST__INIT;

	req.name = (char *)cli_arg(a, "name");
	req.ca_certificate.data = (uint8_t *)cert->data;
	req.ca_certificate.len = cert->len;
	req.verification_certificate.data = (uint8_t *)ver->data;
	req.verification_certificate.len = ver->len;
	req.initial_status = cli_flag(a, "inactive")
	                         ? IOTCA__V1__CA_STATUS__CA_STATUS_INACTIVE
	                         : IOTCA__V1__CA_STATUS__CA_STATUS_ACTIVE;
	return cli_call_print(ctx, CLI_REGISTRY, "RegisterCaCertificate",
	                      &req.base);
}

static int
ca_register_run(cli_ctx *ctx, const cli_args *a)
{
	iotca_buf cert, ver;
	int rc;

	iotca_buf_init(&cert, CA_CERT_MAX);
	iotca_buf_init(&ver, CA_CERT_MAX);
	if ((rc = cli_read_file(cli_arg(a, "cert"), "CA certificate",
	                        CA_CERT_MAX, &cert)) != CLI_EXIT_OK)
		goto out;
	if ((rc = cli_read_file(cli_arg(a, "verification"),
	                        "verification certificate", CA_CERT_MAX,
	                        &ver)) != CLI_EXIT_OK)
		goto out;
	rc = ca_register_send(ctx, a, &cert, &ver);
out:
	iotca_buf_free(&cert);
	iotca_buf_free(&ver);
	return rc;
}

static const out_column ca_columns[] = {
    {"ID", "id"},
    {"NAME", "name"},
    {"STATUS", "status"},
    {"SUBJECT", "subject"},
    {"SERIAL", "serial_number"},
    {"NOT_AFTER", "not_after"},
};

static int
ca_list_run(cli_ctx *ctx, const cli_args *a)
{
	Iotca__V1__ListCaCertificatesRequest req =
	    IOTCA__V1__LIST_CA_CERTIFICATES_REQUEST__INIT;

	return cli_list(ctx, a, CLI_REGISTRY, "ListCaCertificates", &req.base,
	                "ca_certificates", ca_columns, CLI_COUNT(ca_columns));
}

static int
ca_show_run(cli_ctx *ctx, const cli_args *a)
{
	Iotca__V1__GetCaCertificateRequest req =
	    IOTCA__V1__GET_CA_CERTIFICATE_REQUEST__INIT;

	req.id = (char *)a->pos[0];
	return cli_call_print(ctx, CLI_REGISTRY, "GetCaCertificate", &req.base);
}

static int
ca_set_status(cli_ctx *ctx, const cli_args *a, Iotca__V1__CaStatus st)
{
	Iotca__V1__UpdateCaCertificateStatusRequest req =
	    IOTCA__V1__UPDATE_CA_CERTIFICATE_STATUS_REQUEST__INIT;
	Iotca__V1__CaCertificate *ca;
	ProtobufCMessage *resp;
	int rc;

	req.id = (char *)a->pos[0];
	req.status = st;
	if ((rc = cli_call(ctx, CLI_REGISTRY, "UpdateCaCertificateStatus",
	                   &req.base, &resp)) != CLI_EXIT_OK)
		return rc;
	ca = (Iotca__V1__CaCertificate *)(void *)resp;
	if (ctx->json)
		rc = cli_print_message(ctx, resp);
	else
		printf("CA certificate %s (%s) is %s.\n", req.id, ca->name,
		       ca->status == IOTCA__V1__CA_STATUS__CA_STATUS_ACTIVE
		           ? "ACTIVE"
		           : "INACTIVE");
	protobuf_c_message_free_unpacked(resp, NULL);
	return rc;
}

static int
ca_enable_run(cli_ctx *ctx, const cli_args *a)
{
	return ca_set_status(ctx, a, IOTCA__V1__CA_STATUS__CA_STATUS_ACTIVE);
}

static int
ca_disable_run(cli_ctx *ctx, const cli_args *a)
{
	return ca_set_status(ctx, a, IOTCA__V1__CA_STATUS__CA_STATUS_INACTIVE);
}

static int
ca_delete_run(cli_ctx *ctx, const cli_args *a)
{
	Iotca__V1__DeleteCaCertificateRequest req =
	    IOTCA__V1__DELETE_CA_CERTIFICATE_REQUEST__INIT;
	ProtobufCMessage *resp;
	int rc;

	req.id = (char *)a->pos[0];
	if ((rc = cli_call(ctx, CLI_REGISTRY, "DeleteCaCertificate", &req.base,
	                   &resp)) != CLI_EXIT_OK)
		return rc;
	protobuf_c_message_free_unpacked(resp, NULL);
	if (ctx->json)
		return cli_print_json(
		    json_pack("{s:s, s:b}", "id", req.id, "deleted", 1));
	printf("CA certificate %s deleted, with its device associations.\n",
	       req.id);
	return CLI_EXIT_OK;
}

static const cli_opt ca_register_opts[] = {
    {"name", "NAME", "4-30 characters of letters, digits and _", 1, 0},
    {"cert", "FILE", "the CA certificate, PEM or DER", 1, 0},
    {"verification", "FILE", "the validation certificate, PEM or DER", 1, 0},
    {"inactive", NULL, "register it INACTIVE (default ACTIVE)", 0, 0},
};

static const cli_opt ca_list_opts[] = {CLI_OPTS_PAGING};

static const cli_verb ca_verbs[] = {
    {"register", "--name NAME --cert FILE --verification FILE [--inactive]",
     "Register a CA certificate (with proof of its private key)",
     "The CA certificate must be a CA (basicConstraints CA:TRUE) inside "
     "its validity\nperiod. The validation certificate proves that you "
     "hold the CA's private key:\nits CN is the registration code ('iotca "
     "regcode') and the CA's key signed it.\nEach file (.cer, .crt, .pem "
     "or any other name) is PEM or DER, at most 64 KiB.\nAn account holds "
     "at most 10 CA certificates.",
     ca_register_opts, CLI_COUNT(ca_register_opts), 0, 0, ca_register_run},
    {"list", "[--page-size N] [--page-token TOKEN] [--all]",
     "List the account's CA certificates", NULL, ca_list_opts,
     CLI_COUNT(ca_list_opts), 0, 0, ca_list_run},
    {"show", "ID", "Show one CA certificate with all its fields and PEM", NULL,
     NULL, 0, 1, 1, ca_show_run},
    {"enable", "ID", "Set a CA certificate ACTIVE: its devices may connect",
     NULL, NULL, 0, 1, 1, ca_enable_run},
    {"disable", "ID",
     "Set a CA certificate INACTIVE: the edge refuses its devices",
     "Open device sessions are closed within a few seconds; associations "
     "are kept.",
     NULL, 0, 1, 1, ca_disable_run},
    {"delete", "ID", "Delete an INACTIVE CA certificate and its associations",
     NULL, NULL, 0, 1, 1, ca_delete_run},
};

const cli_group cmd_ca_group = {"ca",
                                "The account's CA certificates (tenant API "
                                "key).",
                                ca_verbs, CLI_COUNT(ca_verbs)};
