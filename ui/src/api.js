// The page's only way to erpsync: the IntegrationHistory service over gRPC-Web. The
// message and service descriptors are built at run time from the descriptor set the
// server publishes (/ui/erpsync.binpb), so the page never carries its own copy of the
// contract and the wire work is @bufbuild/protobuf's and @connectrpc/connect's.

import { create, createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import {
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  FileDescriptorProtoSchema,
  FileDescriptorSetSchema,
} from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { enumSuffix } from "./format.js";

export { Code, ConnectError };

const SERVICE = "erpsync.v1.IntegrationHistory";

let descriptorSet = null;

/** Starts (once) the download of the descriptor set; index.html preloads the same URL. */
export function loadDescriptors() {
  if (!descriptorSet) {
    descriptorSet = fetch(new URL("erpsync.binpb", document.baseURI), { credentials: "same-origin" })
      .then(async (res) => {
        if (!res.ok) throw new Error(`erpsync.binpb: HTTP ${res.status}`);
        const set = fromBinary(FileDescriptorSetSchema, new Uint8Array(await res.arrayBuffer()));
        const registry = createFileRegistry(set);
        performance.mark("erpsync:descriptors-ready");
        return registry;
      })
      .catch((err) => {
        descriptorSet = null; // a later attempt may succeed
        throw err;
      });
  }
  return descriptorSet;
}

// google.rpc.BadRequest, the detail the server attaches to INVALID_ARGUMENT. It is not in
// erpsync's descriptor set, so its descriptor is built here from a FileDescriptorProto
// (only the fields the page reads); decoding stays the library's.
const BadRequest = createFileRegistry(
  create(FileDescriptorProtoSchema, {
    name: "google/rpc/error_details.proto",
    package: "google.rpc",
    syntax: "proto3",
    messageType: [
      {
        name: "BadRequest",
        field: [
          {
            name: "field_violations",
            jsonName: "fieldViolations",
            number: 1,
            label: FieldDescriptorProto_Label.REPEATED,
            type: FieldDescriptorProto_Type.MESSAGE,
            typeName: ".google.rpc.BadRequest.FieldViolation",
          },
        ],
        nestedType: [
          {
            name: "FieldViolation",
            field: [
              { name: "field", jsonName: "field", number: 1, label: FieldDescriptorProto_Label.OPTIONAL, type: FieldDescriptorProto_Type.STRING },
              { name: "description", jsonName: "description", number: 2, label: FieldDescriptorProto_Label.OPTIONAL, type: FieldDescriptorProto_Type.STRING },
            ],
          },
        ],
      },
    ],
  }),
  () => undefined,
).getMessage("google.rpc.BadRequest");

/** The field violations of an INVALID_ARGUMENT error: [{field, description}] (maybe empty). */
export function fieldViolations(err) {
  if (!(err instanceof ConnectError)) return [];
  return err.findDetails(BadRequest).flatMap((d) => d.fieldViolations.map((v) => ({ field: v.field, description: v.description })));
}

/** A ConnectError for anything thrown by a call (network failures become UNAVAILABLE). */
export function asConnectError(err) {
  // fetch() rejects with a TypeError when the server cannot be reached; connect-web
  // passes it on as UNKNOWN with the TypeError as its cause.
  const network = err instanceof TypeError || (err instanceof ConnectError && err.code === Code.Unknown && err.cause instanceof TypeError);
  if (network) return new ConnectError(err.rawMessage ?? err.message, Code.Unavailable, undefined, undefined, err);
  if (err instanceof ConnectError) return err;
  return ConnectError.from(err);
}

/** True when the error only says the call was cancelled by the page itself. */
export function isCanceled(err) {
  return (err instanceof ConnectError && err.code === Code.Canceled) || err?.name === "AbortError";
}

/**
 * A connection for one signed-in session: the typed client plus descriptor helpers.
 * `creds` is {tenant, token}.
 */
export async function connect(creds) {
  const registry = await loadDescriptors();
  const service = registry.getService(SERVICE);
  if (!service) throw new Error(`${SERVICE} is not in erpsync.binpb`);
  const transport = createGrpcWebTransport({
    baseUrl: location.origin,
    useBinaryFormat: true,
    interceptors: [
      (next) => (req) => {
        req.header.set("authorization", `Bearer ${creds.token}`);
        return next(req);
      },
    ],
  });
  const client = createClient(service, transport);
  return {
    client,
    service,
    registry,
    tenant: creds.tenant,
    /** Whether the server's contract has this method (e.g. GetRecordTrace one day). */
    has: (method) => service.methods.some((m) => m.name === method),
    /** An enum value's suffix: ("Health", 5) → "NEVER_RUN". */
    enumName: (enumName, n) => enumSuffix(registry.getEnum(`erpsync.v1.${enumName}`), n),
    /** An enum value's number from its suffix: ("ResolveAction", "APPROVE") → 1. */
    enumValue: (enumName, suffix) => {
      const e = registry.getEnum(`erpsync.v1.${enumName}`);
      const v = e?.values.find((x) => enumSuffix(e, x.number) === suffix);
      if (!v) throw new Error(`erpsync.v1.${enumName} has no ${suffix}`);
      return v.number;
    },
  };
}
