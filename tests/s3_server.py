"""An S3-protocol server on 127.0.0.1 for the object storage tests.

Starts moto's server on a free port with authentication on, makes a user
allowed everything and the buckets named on the command line, prints
`<port> <access key id> <secret access key>` on one line, and runs until
its standard input closes (the test that started it ended or died).
"""
import json
import os
import sys

# The first requests (making the user, its key and its rights) need no
# signature; every later one must be signed with that key.
os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"

from urllib.parse import quote, unquote  # noqa: E402

from moto.iam import access_control  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402

# moto 5.2.1 checks S3 signatures against the query string as its web
# server decoded it (`prefix=photos/`), while clients sign it encoded
# (`prefix=photos%2F`, as SigV4 says): every listing of a folder would be
# refused. Hand moto the query encoded as SigV4 encodes it.
_moto_init = access_control.S3IAMRequest.__init__


def _sigv4_encoded(part):
    return quote(unquote(part), safe="-_.~")


def _init_with_encoded_query(self, *args, **kwargs):
    base, sep, query = kwargs["path"].partition("?")
    pairs = [p.partition("=") for p in query.split("&") if p]
    query = "&".join(_sigv4_encoded(k) + eq + _sigv4_encoded(v) for k, eq, v in pairs)
    kwargs["path"] = base + sep + query
    _moto_init(self, *args, **kwargs)


access_control.S3IAMRequest.__init__ = _init_with_encoded_query

server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
port = server._server.server_port
endpoint = f"http://127.0.0.1:{port}"

import boto3  # noqa: E402  (moto brings it)

iam = boto3.client(
    "iam",
    endpoint_url=endpoint,
    aws_access_key_id="setup",
    aws_secret_access_key="setup",
    region_name="us-east-1",
)
iam.create_user(UserName="spectradb")
iam.put_user_policy(
    UserName="spectradb",
    PolicyName="everything",
    PolicyDocument=json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
        }
    ),
)
key = iam.create_access_key(UserName="spectradb")["AccessKey"]
s3 = boto3.client(
    "s3",
    endpoint_url=endpoint,
    aws_access_key_id=key["AccessKeyId"],
    aws_secret_access_key=key["SecretAccessKey"],
    region_name="us-east-1",
)
for bucket in sys.argv[1:]:
    s3.create_bucket(Bucket=bucket)
print(port, key["AccessKeyId"], key["SecretAccessKey"], flush=True)
sys.stdin.read()
server.stop()
