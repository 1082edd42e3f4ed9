"""Checks AWS Signature Version 4 signatures with botocore, the AWS SDK for Python's own signer.

Reads a JSON array of requests as an upstream received them (method, target as sent, headers, body in
base64) with the credentials, region and service they should be signed with; prints a JSON array of
verdicts, one per request: {"ok": true} or {"ok": false, "error": "..."}. It shares nothing with Keyway.
"""
import base64
import hashlib
import json
import re
import sys

from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<scope>[^,]+), SignedHeaders=(?P<signed>[^,]+), Signature=(?P<signature>[0-9a-f]{64})$")


def verify(r):
    headers = {name.lower(): value for name, value in r["headers"].items()}
    match = AUTHORIZATION.match(headers.get("authorization", ""))
    if not match:
        return {"ok": False, "error": "no AWS4-HMAC-SHA256 Authorization header: %r" % headers.get("authorization")}
    if match["key"] != r["accessKeyId"]:
        return {"ok": False, "error": "signed with access key %s" % match["key"]}
    date = headers.get("x-amz-date", "")
    scope = "%s/%s/%s/aws4_request" % (date[:8], r["region"], r["service"])
    if match["scope"] != scope:
        return {"ok": False, "error": "credential scope %s, expected %s" % (match["scope"], scope)}
    signed = match["signed"].split(";")
    for required in ("host", "x-amz-date"):
        if required not in signed:
            return {"ok": False, "error": "%s is not signed" % required}
    body = base64.b64decode(r["body"])
    claimed = headers.get("x-amz-content-sha256")
    if claimed is not None and claimed != "UNSIGNED-PAYLOAD" and claimed != hashlib.sha256(body).hexdigest():
        return {"ok": False, "error": "x-amz-content-sha256 is not the body's hash"}

    request = AWSRequest(method=r["method"], url="http://" + headers["host"] + r["target"], data=body)
    for name in signed:
        request.headers[name] = headers[name]
    request.context["timestamp"] = date
    credentials = Credentials(r["accessKeyId"], r["secretAccessKey"], r.get("sessionToken"))
    signer = (S3SigV4Auth if r["service"] == "s3" else SigV4Auth)(credentials, r["service"], r["region"])
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if expected != match["signature"]:
        return {"ok": False, "error": "signature mismatch; botocore's canonical request:\n" + canonical}
    return {"ok": True}


print(json.dumps([verify(r) for r in json.load(sys.stdin)]))
