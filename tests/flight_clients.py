"""Real Flight SQL clients against a running `spectradb serve`.

Run by the integration test `flight::external_clients_adbc_and_pyarrow_flight`
(which starts the servers); by hand:

    python3 tests/flight_clients.py --uri grpc://127.0.0.1:50051 --token TOKEN \
        --repo . [--tls-uri grpc+tls://127.0.0.1:50052 --ca cert.pem]

Needs adbc-driver-flightsql, adbc-driver-manager and pyarrow (see .ci/run).
"""

import argparse
import sys

import adbc_driver_flightsql.dbapi as flight_sql
import adbc_driver_manager
import pyarrow.flight as flight

AUTH = "adbc.flight.sql.authorization_header"
TLS_ROOTS = "adbc.flight.sql.client_option.tls_root_certs"


def connect(uri, token, **extra):
    return flight_sql.connect(uri, db_kwargs={AUTH: f"Bearer {token}", **extra})


def query(conn, sql, parameters=None):
    with conn.cursor() as cur:
        cur.execute(sql, parameters)
        return cur.fetch_arrow_table()


def expect_error(what, fn, *needles):
    try:
        fn()
    except Exception as e:  # the drivers raise their own error types
        text = str(e)
        assert any(n.lower() in text.lower() for n in needles), f"{what}: {text}"
        print(f"ok: {what} refused: {text.splitlines()[0][:160]}")
        return
    raise AssertionError(f"{what}: no error")


def adbc_dbapi(args):
    colors = f"{args.repo}/tests/data/colors"
    model = f"{args.repo}/tests/data/models/tiny_rgb.onnx"
    labels = f"{args.repo}/tests/data/models/tiny_rgb_labels.txt"
    with connect(args.uri, args.token) as conn:
        query(conn, f"CREATE IMAGE TABLE py_colors FROM '{colors}'")
        query(conn, f"CREATE MODEL py_tiny FROM '{model}' WITH (labels = '{labels}')")
        t = query(conn, "SELECT id, py_tiny(image) AS label FROM py_colors ORDER BY id")
        assert t.num_rows == 3, t
        assert t.schema.names == ["id", "label"], t.schema
        print("ok: model query", t.column("label").to_pylist())

        t = query(conn, "SELECT id FROM py_colors WHERE id > $1 ORDER BY id", (t["id"][0].as_py(),))
        assert t.num_rows == 2, t
        print("ok: prepared statement with a parameter")

        t = query(conn, "SELECT thumbnail(image, 16) AS thumb, to_png(image) AS png FROM py_colors LIMIT 1")
        assert t.column("thumb")[0].as_py()[:4] == b"\x89PNG"
        assert t.column("png")[0].as_py()[:4] == b"\x89PNG"
        print("ok: pictures as PNG bytes")

        objects = conn.adbc_get_objects(table_name_filter="py_colors").read_all().to_pylist()
        tables = [
            tbl["table_name"]
            for cat in objects
            for schema in cat["catalog_db_schemas"] or []
            for tbl in schema["db_schema_tables"] or []
        ]
        assert tables == ["py_colors"], objects
        schema = conn.adbc_get_table_schema("py_colors")
        assert "image" in schema.names, schema
        print("ok: adbc_get_objects and adbc_get_table_schema")

        expect_error(
            "a path outside the data root",
            lambda: query(conn, "CREATE EXTERNAL TABLE pw STORED AS CSV LOCATION '/etc/passwd'"),
            "outside the data root",
        )

    # Settings stay with their connection.
    setting = (
        "SELECT value FROM information_schema.df_settings "
        "WHERE name = 'datafusion.execution.batch_size'"
    )
    with connect(args.uri, args.token) as a, connect(args.uri, args.token) as b:
        before = query(b, setting)["value"][0].as_py()
        query(a, "SET spectradb.accuracy_target = 0.5")
        query(a, "SET datafusion.execution.batch_size = 1234")
        assert query(a, setting)["value"][0].as_py() == "1234"
        assert query(b, setting)["value"][0].as_py() == before
        print("ok: SET does not leak between connections")

    def bad_token():
        with connect(args.uri, "not-the-token-0123456789") as conn:
            query(conn, "SELECT 1")

    expect_error("a bad token", bad_token, "unauthenticated", "token")


def any_command(type_name, query):
    """A Flight SQL command packed in protobuf's Any, encoded by hand."""

    def varint(n):
        out = bytearray()
        while True:
            b = n & 0x7F
            n >>= 7
            out.append(b | (0x80 if n else 0))
            if not n:
                return bytes(out)

    def field(number, data):
        return varint(number << 3 | 2) + varint(len(data)) + data

    url = f"type.googleapis.com/arrow.flight.protocol.sql.{type_name}".encode()
    return field(1, url) + field(2, field(1, query.encode()))


def pyarrow_flight(args):
    client = flight.FlightClient(args.uri)
    header = client.authenticate_basic_token("alice", args.token)
    options = flight.FlightCallOptions(headers=[header])
    descriptor = flight.FlightDescriptor.for_command(
        any_command("CommandStatementQuery", "SELECT value FROM range(5000) WHERE value % 2 = 0")
    )
    info = client.get_flight_info(descriptor, options)
    table = client.do_get(info.endpoints[0].ticket, options).read_all()
    assert table.num_rows == 2500, table
    assert table.schema == info.schema, (table.schema, info.schema)
    print("ok: pyarrow.flight handshake, GetFlightInfo, DoGet")

    expect_error(
        "a bad token (pyarrow.flight handshake)",
        lambda: client.authenticate_basic_token("alice", "not-the-token-0123456789"),
        "unauthenticated",
        "token",
    )
    expect_error(
        "no token (pyarrow.flight)",
        lambda: flight.FlightClient(args.uri).get_flight_info(descriptor),
        "unauthenticated",
    )


def tls(args):
    pem = open(args.ca, "rb").read()
    with connect(args.tls_uri, args.token, **{TLS_ROOTS: pem.decode()}) as conn:
        assert query(conn, "SELECT 40 + 2 AS n")["n"][0].as_py() == 42
    client = flight.FlightClient(args.tls_uri, tls_root_certs=pem)
    header = client.authenticate_basic_token("alice", args.token)
    descriptor = flight.FlightDescriptor.for_command(any_command("CommandStatementQuery", "SELECT 1 AS one"))
    options = flight.FlightCallOptions(headers=[header])
    info = client.get_flight_info(descriptor, options)
    assert client.do_get(info.endpoints[0].ticket, options).read_all().num_rows == 1
    print("ok: TLS with a self-signed certificate (ADBC and pyarrow.flight)")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--uri", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--repo", required=True)
    p.add_argument("--tls-uri")
    p.add_argument("--ca")
    args = p.parse_args()
    print("adbc_driver_manager", adbc_driver_manager.__version__)
    adbc_dbapi(args)
    pyarrow_flight(args)
    if args.tls_uri:
        tls(args)
    print("all external client checks passed")


if __name__ == "__main__":
    sys.exit(main())
