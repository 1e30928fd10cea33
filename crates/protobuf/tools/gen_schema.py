#!/usr/bin/env python3
"""Generates crates/protobuf/src/schema.rs: the protobuf -> JSON schema of every Kubernetes message.

Run once at development time (output is committed):
    python3 crates/protobuf/tools/gen_schema.py [K8S_PB_SRC] [K8S_OPENAPI_SRC]

Inputs:
  * the prost-generated source of the `k8s-pb` crate: message names, field numbers and protobuf types;
  * the source of the `k8s-openapi` crate: the JSON spelling of every field (the string literals in its
    Deserialize impls), whether the field is required (not an Option), and which apiVersion/kind each
    resource has.
Fields are matched case-insensitively with non-alphanumerics removed ("external_i_ps" <-> "externalIPs").
A message field that has no JSON counterpart but whose message's fields do appear in the parent's JSON is an
embedded Go struct (`json:",inline"`, e.g. Probe.handler, Volume.volumeSource) and is marked inline.
"""
import glob
import os
import re
import sys

HOME = os.path.expanduser("~")
PB = sys.argv[1] if len(sys.argv) > 1 else glob.glob(f"{HOME}/.cargo/registry/src/*/k8s-pb-0.9.0/src")[0]
OA = sys.argv[2] if len(sys.argv) > 2 else glob.glob(f"{HOME}/.cargo/registry/src/*/k8s-openapi-0.29.0/src")[0]
OA_VERSIONS = ["v1_33", "v1_34", "v1_35", "v1_36", "v1_37"]  # first wins; later ones only add
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src", "schema.rs")

# Messages whose JSON form is not an object (see the decoder for each form).
SPECIAL = {
    "apimachinery.pkg.apis.meta.v1.Time": "Time",
    "apimachinery.pkg.apis.meta.v1.MicroTime": "MicroTime",
    "apimachinery.pkg.apis.meta.v1.Duration": "Duration",
    "apimachinery.pkg.apis.meta.v1.FieldsV1": "RawJson",
    "apimachinery.pkg.runtime.RawExtension": "RawJson",
    "apimachinery.pkg.api.resource.Quantity": "Quantity",
    "apimachinery.pkg.api.resource.QuantityValue": "Quantity",
    "apimachinery.pkg.util.intstr.IntOrString": "IntOrString",
    "apiextensions_apiserver.pkg.apis.apiextensions.v1.Json": "RawJson",
    "apiextensions_apiserver.pkg.apis.apiextensions.v1.JsonSchemaPropsOrArray": "SchemaOrArray",
    "apiextensions_apiserver.pkg.apis.apiextensions.v1.JsonSchemaPropsOrBool": "SchemaOrBool",
    "apiextensions_apiserver.pkg.apis.apiextensions.v1.JsonSchemaPropsOrStringArray": "SchemaOrStringArray",
    "apiextensions_apiserver.pkg.apis.apiextensions.v1beta1.Json": "RawJson",
    "apiextensions_apiserver.pkg.apis.apiextensions.v1beta1.JsonSchemaPropsOrArray": "SchemaOrArray",
    "apiextensions_apiserver.pkg.apis.apiextensions.v1beta1.JsonSchemaPropsOrBool": "SchemaOrBool",
    "apiextensions_apiserver.pkg.apis.apiextensions.v1beta1.JsonSchemaPropsOrStringArray": "SchemaOrStringArray",
}

SCALARS = {"bool": "Bool", "int32": "Int32", "int64": "Int64", "double": "Double", "string": "String", "bytes": "Bytes"}


def norm(name):
    return re.sub(r"[^a-z0-9]", "", name.lower().replace("r#", ""))


# ---------------------------------------------------------------- k8s-pb
def resolve(module, rust_type):
    """Resolves a prost type path relative to `module` (a list of path segments) to a message id."""
    t = rust_type
    for wrapper in ("::core::option::Option<", "::prost::alloc::vec::Vec<", "::prost::alloc::boxed::Box<"):
        t = t.replace(wrapper, "")
    t = t.replace(">", "").strip().rstrip(",")
    parts = t.split("::")
    mod = list(module)
    while parts and parts[0] == "super":
        parts.pop(0)
        mod.pop()
    return ".".join(mod + parts)


messages = {}  # id -> list of fields
order = []
for path in sorted(glob.glob(f"{PB}/**/mod.rs", recursive=True)):
    rel = os.path.relpath(os.path.dirname(path), PB)
    module = rel.split(os.sep)
    text = open(path).read()
    for m in re.finditer(r"pub struct (\w+) \{(?:\}|(.*?)\n\})", text, re.S):
        name, body = m.group(1), m.group(2) or ""
        mid = ".".join(module + [name])
        fields = []
        prev_end = 0
        for f in re.finditer(r"#\[prost\(([^\]]*)\)\]\s*pub (\w+|r#\w+):\s*(.*?),\s*(?=///|#\[|$)", body, re.S):
            attr, fname, ftype = f.group(1), f.group(2), re.sub(r"\s+", "", f.group(3))
            tag = int(re.search(r'tag = "(\d+)"', attr).group(1))
            mm = re.match(r'btree_map = "string, (\w+)"', attr)
            if mm:
                card = "Map"
                vt = mm.group(1)
                if vt == "message":
                    inner = re.search(r"BTreeMap<::prost::alloc::string::String,(.*?),?>$", ftype).group(1)
                    ty = ("Msg", resolve(module, inner))
                else:
                    ty = (SCALARS[vt], None)
            else:
                kind = attr.split(",")[0].split("=")[0].strip()
                card = "Repeated" if "repeated" in attr else "Single"
                ty = ("Msg", resolve(module, ftype)) if kind == "message" else (SCALARS[kind], None)
            doc = " ".join(l.strip().lstrip("/") for l in body[prev_end:f.start()].splitlines())
            prev_end = f.end()
            fields.append({"num": tag, "rust": fname, "card": card, "ty": ty, "doc": doc})
        messages[mid] = fields
        order.append(mid)

# ---------------------------------------------------------------- k8s-openapi
openapi = {}  # normalized definition -> {norm(field): (json, required)}
resources = []  # (apiVersion, kind, normalized definition)
for ver in OA_VERSIONS:
    for path in sorted(glob.glob(f"{OA}/{ver}/**/*.rs", recursive=True)):
        text = open(path).read()
        d = re.match(r"// Generated from definition (\S+)", text)
        if not d:
            continue
        defn = norm(d.group(1).replace("io.k8s.", "", 1))
        sm = re.search(r"pub struct \w+ \{(.*?)\n\}", text, re.S)
        rust_fields = {}
        if sm:
            for f in re.finditer(r"pub (\w+): (.*?),\n", sm.group(1)):
                rust_fields[f.group(1)] = not f.group(2).startswith("Option<")
        names = openapi.setdefault(defn, {})
        for a in re.finditer(r'"([^"]+)" => Field::Key_(\w+),', text):
            json, rust = a.group(1), a.group(2)
            if json in ("apiVersion", "kind") and rust in ("api_version", "kind") and sm and rust not in rust_fields:
                continue
            names.setdefault(norm(json), (json, rust_fields.get(rust, False)))
        av = re.search(r'const API_VERSION: &\'static str = "([^"]+)";', text)
        kd = re.search(r'const KIND: &\'static str = "([^"]+)";', text)
        if av and kd:
            resources.append((av.group(1), kd.group(1), defn))
            lk = re.search(r'const LIST_KIND: &\'static str = "([^"]+)";', text)
            if lk:
                resources.append((av.group(1), lk.group(1), defn + "list"))

pb_by_norm = {norm(mid): mid for mid in order}


def lower_camel(rust):
    parts = rust.replace("r#", "").split("_")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


# Go pointer fields (*int32, *bool, *string) are sent even when zero, and Go's JSON keeps them
# ("replicas": 0, "enableServiceLinks": false); non-pointer omitempty fields are always on the wire and
# Go's JSON drops their zero value. Protobuf does not say which is which, so pointer fields are recognised
# from their documentation (the Kubernetes convention "This is a pointer to distinguish between explicit
# zero and not specified", or "nil means") plus this list of pointer fields whose zero value means
# something different from unset. A documented non-zero default is NOT a sign of a pointer: Probe's
# `timeoutSeconds int32` "Defaults to 1" is a plain omitempty field that the server defaults when zero.
POINTER_FIELDS = {
    "runAsUser", "runAsGroup", "runAsNonRoot", "fsGroup", "privileged", "readOnlyRootFilesystem",
    "allowPrivilegeEscalation", "procMount", "supplementalGroupsPolicy", "seLinuxChangePolicy",
    "automountServiceAccountToken", "shareProcessNamespace", "hostUsers", "setHostnameAsFQDN",
    "terminationGracePeriodSeconds", "activeDeadlineSeconds", "priority", "preemptionPolicy",
    "immutable", "optional", "defaultMode", "mode", "suspend", "manualSelector", "parallelism",
    "completions", "backoffLimit", "backoffLimitPerIndex", "maxFailedIndexes", "ttlSecondsAfterFinished",
    "startingDeadlineSeconds", "successfulJobsHistoryLimit", "failedJobsHistoryLimit", "partition",
    "revisionHistoryLimit", "progressDeadlineSeconds", "minReplicas", "storageClassName", "volumeMode",
    "allocateLoadBalancerNodePorts", "loadBalancerClass", "ingressClassName", "appProtocol",
    "ready", "serving", "terminating", "leaseDurationSeconds", "leaseTransitions", "expirationSeconds",
    "sideEffects", "reinvocationPolicy", "matchPolicy", "failurePolicy", "collisionCount",
    "enableServiceLinks",
}
POINTER_DOC = re.compile(r"pointer to distinguish|\bnil means|[Ii]f nil\b")


def is_pointer(mid, json, doc):
    return json in POINTER_FIELDS or POINTER_DOC.search(doc) is not None


# ---------------------------------------------------------------- resolve JSON names
# An embedded struct without its own definition borrows the JSON names of the struct it is inlined into.
host = {}
changed = True
while changed:
    changed = False
    for mid in order:
        names = openapi.get(norm(mid)) or host.get(mid)
        if names is None:
            continue
        for f in messages[mid]:
            child = f["ty"][1]
            if f["ty"][0] != "Msg" or f["card"] != "Single" or norm(f["rust"]) in names:
                continue
            if norm(child) in openapi or child in host:
                continue
            if any(norm(c["rust"]) in names for c in messages.get(child, [])):
                host[child] = names
                changed = True

warnings = []
schema = {}
for mid in order:
    names = openapi.get(norm(mid)) or host.get(mid)
    out = []
    for f in messages[mid]:
        key = norm(f["rust"])
        json, required, inline = None, False, False
        if names is not None and key in names:
            json, required = names[key]
        elif names is not None and f["ty"][0] == "Msg" and f["card"] == "Single":
            child = messages.get(f["ty"][1], [])
            if any(norm(c["rust"]) in names for c in child):
                inline, json = True, ""
        if json is None:
            json = lower_camel(f["rust"])
            if names is not None and mid not in SPECIAL:
                warnings.append(f"{mid}.{f['rust']}: no JSON name in k8s-openapi, using {json}")
        keep_zero = required or (
            f["card"] == "Single" and f["ty"][0] in ("Bool", "Int32", "Int64", "String") and is_pointer(mid, json, f["doc"])
        )
        out.append(dict(f, json=json, keep_zero=keep_zero, inline=inline))
    schema[mid] = sorted(out, key=lambda f: f["num"])

# Keep only what is reachable from a resource kind (plus the envelope types).
kinds = []
for api_version, kind, defn in resources:
    mid = pb_by_norm.get(defn)
    if mid is None:
        if not kind.endswith("List"):
            warnings.append(f"{api_version} {kind}: no protobuf message")
        continue
    kinds.append((api_version, kind, mid))
kinds = sorted(set(kinds))
reach = set()
stack = [k[2] for k in kinds]
while stack:
    mid = stack.pop()
    if mid in reach:
        continue
    reach.add(mid)
    for f in schema[mid]:
        if f["ty"][0] == "Msg":
            stack.append(f["ty"][1])
ids = sorted(reach)
for mid in ids:
    if norm(mid) not in openapi and mid not in SPECIAL and mid not in host and not mid.endswith("List"):
        print("note: no k8s-openapi definition (names guessed):", mid, file=sys.stderr)
index = {mid: i for i, mid in enumerate(ids)}


def ty_rs(ty):
    return f"Ty::Msg({index[ty[1]]})" if ty[0] == "Msg" else f"Ty::{ty[0]}"


lines = [
    "// @generated by crates/protobuf/tools/gen_schema.py from k8s-pb 0.9 and k8s-openapi 0.29. Do not edit.",
    "//! The protobuf -> JSON schema of every Kubernetes message reachable from a built-in kind.",
    "use crate::wire::{Card, Field, Kind, Msg, Special, Ty};",
    "",
    "/// Every message, indexed by `Ty::Msg`.",
    "pub(crate) static MESSAGES: &[Msg] = &[",
]
for mid in ids:
    special = SPECIAL.get(mid, "Object")
    if special == "Object":
        fs = schema[mid]
        if len(fs) == 1 and fs[0]["rust"] == "items" and fs[0]["card"] == "Repeated" and norm(mid) not in openapi:
            special = "ItemsArray"  # Verbs, ExtraValue: a []string in Go, a wrapper message in protobuf
    lines.append(f'    Msg {{ name: "{mid}", special: Special::{special}, fields: &[')
    for f in schema[mid]:
        card = f"Card::Map({ty_rs(f['ty'])})" if f["card"] == "Map" else f"Card::{f['card']}"
        ty = "Ty::String" if f["card"] == "Map" else ty_rs(f["ty"])
        lines.append(
            f'        Field {{ num: {f["num"]}, json: "{f["json"]}", ty: {ty}, card: {card}, '
            f'keep_zero: {str(f["keep_zero"]).lower()}, inline: {str(f["inline"]).lower()} }},'
        )
    lines.append("    ] },")
lines.append("];")
lines.append("")
lines.append("/// Every (apiVersion, kind) that has a protobuf message, sorted for binary search.")
lines.append("pub(crate) static KINDS: &[Kind] = &[")
for api_version, kind, mid in kinds:
    lines.append(f'    Kind {{ api_version: "{api_version}", kind: "{kind}", msg: {index[mid]} }},')
lines.append("];")
with open(OUT, "w") as fh:
    fh.write("\n".join(lines) + "\n")
for w in warnings:
    print("warning:", w, file=sys.stderr)
print(f"{len(ids)} messages, {len(kinds)} kinds -> {os.path.normpath(OUT)}", file=sys.stderr)
