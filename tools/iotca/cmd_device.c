/*
 * cmd_device.c - iotca device enable | disable: whether an associated
 * device may connect (tenant API key).
 */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "iotca/v1/association.pb-c.h"

static int
device_set_status(cli_ctx *ctx, const cli_args *a, Iotca__V1__DeviceStatus st)
{
	Iotca__V1__UpdateDeviceStatusRequest req =
	    IOTCA__V1__UPDATE_DEVICE_STATUS_REQUEST__INIT;
	ProtobufCMessage *resp;
	char *status;
	int rc;

	req.product_key = (char *)a->pos[0];
	req.device_name = (char *)a->pos[1];
	req.status = st;
	if ((rc = cli_call(ctx, CLI_ASSOCIATION, "UpdateDeviceStatus",
	                   &req.base, &resp)) != CLI_EXIT_OK)
		return rc;
	if (ctx->json) {
		rc = cli_print_message(ctx, resp);
	} else if ((status = out_field_text(resp, "status")) == NULL) {
		rc = cli_fail(CLI_EXIT_FAIL, "out of memory");
	} else {
		printf("Device %s/%s is %s.\n", req.product_key,
		       req.device_name, status);
		free(status);
	}
	protobuf_c_message_free_unpacked(resp, NULL);
	return rc;
}

static int
device_enable_run(cli_ctx *ctx, const cli_args *a)
{
	return device_set_status(
	    ctx, a, IOTCA__V1__DEVICE_STATUS__DEVICE_STATUS_ENABLED);
}

static int
device_disable_run(cli_ctx *ctx, const cli_args *a)
{
	return device_set_status(
	    ctx, a, IOTCA__V1__DEVICE_STATUS__DEVICE_STATUS_DISABLED);
}

static const cli_verb device_verbs[] = {
    {"enable", "PRODUCT_KEY DEVICE_NAME", "Let a device connect again",
     "A device exists while it has an association ('iotca assoc upload'); "
     "a newly\nassociated device starts enabled. Enabling an enabled "
     "device changes nothing.",
     NULL, 0, 2, 2, device_enable_run},
    {"disable", "PRODUCT_KEY DEVICE_NAME",
     "Refuse a device at the edge; its association is kept",
     "New connections are refused and an open session is closed within a "
     "few seconds.\nDeleting the association ('iotca assoc delete') "
     "forgets the status.",
     NULL, 0, 2, 2, device_disable_run},
};

const cli_group cmd_device_group = {"device",
                                    "Associated devices: enable or disable "
                                    "(tenant API key).",
                                    device_verbs, CLI_COUNT(device_verbs)};
