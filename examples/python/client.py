#!/usr/bin/python3
"""A small Python client of heygen.v1.AvatarsService, VoicesService and
VideosService.

It runs on Debian's python3-grpcio and python3-protobuf, with stubs that
Debian's protoc generates from proto/ (see examples/README.md):

  - a bearer token (HEYGEN_GRPC_TOKEN) as `authorization` metadata and a
    deadline on every call;
  - retries of UNAVAILABLE only, through the gRPC service config; every other
    code is final (the gateway already retries HeyGen itself);
  - ListAvatars with a filter (studio avatars), following next_page_token;
  - GetAvatar by id;
  - for two bad ids, the status code and the google.rpc.ErrorInfo,
    BadRequest and RetryInfo details decoded from the
    grpc-status-details-bin trailer;
  - ListVoices with filters (language and gender);
  - CreateVideo with a request_id (a new UUID), sent twice as a retry would
    be, which makes one video; then WatchVideo to the end.

It checks what it gets and exits 1 on anything unexpected, so the
end-to-end test can run it against the demo server:

  HEYGEN_GRPC_ADDR=localhost:50051 HEYGEN_GRPC_TOKEN=... /usr/bin/python3 examples/python/client.py
"""

import json
import os
import pathlib
import posixpath
import sys
import urllib.parse
import uuid

# The generated stubs: examples/python/gen, unless PYTHONPATH already has
# them (appended, so PYTHONPATH wins).
sys.path.append(str(pathlib.Path(__file__).resolve().parent / "gen"))

try:
    import grpc
    from google.rpc import status_pb2
    from google.rpc.error_details_pb2 import BadRequest, ErrorInfo, RetryInfo
    from heygen.v1 import avatars_pb2, avatars_pb2_grpc, videos_pb2, videos_pb2_grpc, voices_pb2, voices_pb2_grpc
except ImportError as e:
    sys.exit(
        f"FAIL: {e}: run with Debian's /usr/bin/python3 (python3-grpcio, python3-protobuf) "
        "after generating the stubs into examples/python/gen (examples/README.md says how)"
    )

ADDR = os.environ.get("HEYGEN_GRPC_ADDR", "localhost:50051")
TOKEN = os.environ.get("HEYGEN_GRPC_TOKEN", "")
CALL_TIMEOUT = 10.0  # seconds: the deadline of each call, retries included
PAGE_SIZE = 3
PAGES = 3  # so next_page_token is followed PAGES-1 times
WATCH_TIMEOUT = 120.0  # seconds: WatchVideo, longer than the demo's 8 s render
VIDEO_AVATAR = "Zoe_OutdoorPark_20240523"  # a demo avatar with a default voice

# Retry UNAVAILABLE only, with exponential backoff (0.1s doubling up to 2s,
# 5 attempts in all), through gRPC's own retry support. A retried CreateVideo
# is safe: it carries the same request_id.
SERVICE_CONFIG = {
    "methodConfig": [
        {
            "name": [
                {"service": "heygen.v1.AvatarsService"},
                {"service": "heygen.v1.VoicesService"},
                {"service": "heygen.v1.VideosService"},
            ],
            "retryPolicy": {
                "maxAttempts": 5,
                "initialBackoff": "0.1s",
                "maxBackoff": "2s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ]
}


class Unexpected(Exception):
    """The server answered something this client does not expect."""


def expect(cond, message):
    if not cond:
        raise Unexpected(message)


class Client:
    """Calls AvatarsService, VoicesService and VideosService with the token
    and a deadline on every call."""

    def __init__(self, channel, token):
        self.stub = avatars_pb2_grpc.AvatarsServiceStub(channel)
        self.voices = voices_pb2_grpc.VoicesServiceStub(channel)
        self.videos = videos_pb2_grpc.VideosServiceStub(channel)
        self.metadata = (("authorization", f"Bearer {token}"),) if token else ()

    def call(self, method, request, stub=None):
        return getattr(stub or self.stub, method)(request, timeout=CALL_TIMEOUT, metadata=self.metadata)


def status_details(err):
    """Decodes a failed call's grpc-status-details-bin trailer (a
    google.rpc.Status) into {detail class: message} for the details this
    client knows: ErrorInfo, BadRequest and RetryInfo."""
    found = {}
    raw = dict(err.trailing_metadata() or ()).get("grpc-status-details-bin")
    if raw is not None:
        for detail in status_pb2.Status.FromString(raw).details:
            for cls in (ErrorInfo, BadRequest, RetryInfo):
                if detail.Is(cls.DESCRIPTOR):
                    found[cls] = cls()
                    detail.Unpack(found[cls])
    return found


def describe(err):
    """One line: code, ErrorInfo reason and domain, field violations and the
    RetryInfo delay of a failed call."""
    details = status_details(err)
    line = f"code={err.code().name}"
    if info := details.get(ErrorInfo):
        line += f" reason={info.reason} domain={info.domain}"
    else:
        line += " (no ErrorInfo)"
    for v in details[BadRequest].field_violations if BadRequest in details else ():
        line += f" field_violation={v.field}"
    if retry := details.get(RetryInfo):
        line += f" retry_delay={retry.retry_delay.ToJsonString()}"
    else:
        line += " retry_delay=none"
    return line


def list_studio_avatars(client):
    """Reads PAGES pages of studio avatars; returns the first avatar's id."""
    print(f"ListAvatars avatar_type=AVATAR_TYPE_STUDIO_AVATAR page_size={PAGE_SIZE}")
    seen = set()
    first, token = "", ""
    for page in range(1, PAGES + 1):
        request = avatars_pb2.ListAvatarsRequest(
            page_size=PAGE_SIZE,
            page_token=token,
            avatar_type=avatars_pb2.AVATAR_TYPE_STUDIO_AVATAR,
        )
        try:
            resp = client.call("ListAvatars", request)
        except grpc.RpcError as err:
            raise Unexpected(f"ListAvatars page {page}: {describe(err)}: {err.details()}") from None
        n = len(resp.avatars)
        expect(1 <= n <= PAGE_SIZE, f"ListAvatars page {page}: {n} avatars, want 1 to {PAGE_SIZE}")
        print(f"  page {page}:")
        for a in resp.avatars:
            expect(
                a.avatar_type == avatars_pb2.AVATAR_TYPE_STUDIO_AVATAR,
                f"ListAvatars page {page}: {a.id} is {avatars_pb2.AvatarType.Name(a.avatar_type)} despite the filter",
            )
            expect(a.id not in seen, f"ListAvatars page {page}: {a.id} was already on an earlier page")
            seen.add(a.id)
            first = first or a.id
            print(f"    {a.id:<34} {a.name}")
        token = resp.next_page_token
        expect(page == PAGES or token, f"ListAvatars page {page}: no next_page_token, but the demo catalogue has more")
    print(f"  {len(seen)} avatars on {PAGES} pages (next_page_token followed {PAGES - 1} times)")
    return first


def get_avatar(client, avatar_id):
    try:
        resp = client.call("GetAvatar", avatars_pb2.GetAvatarRequest(avatar_id=avatar_id))
    except grpc.RpcError as err:
        raise Unexpected(f"GetAvatar {avatar_id}: {describe(err)}: {err.details()}") from None
    a = resp.avatar
    expect(a.id == avatar_id, f"GetAvatar {avatar_id} returned {a.id!r}")
    created = a.created_at.ToJsonString() if a.HasField("created_at") else "unknown"
    print(f'GetAvatar {avatar_id}: "{a.name}", {avatars_pb2.AvatarType.Name(a.avatar_type)}, created {created}')


def expect_error(client, avatar_id, code, reason, domain, bad_request):
    """Calls GetAvatar with a bad id and checks the code and details."""
    shown = json.dumps(avatar_id)
    try:
        client.call("GetAvatar", avatars_pb2.GetAvatarRequest(avatar_id=avatar_id))
    except grpc.RpcError as err:
        print(f"GetAvatar {shown}: {describe(err)}")
        details = status_details(err)
        info = details.get(ErrorInfo)
        expect(err.code() == code, f"GetAvatar {shown}: code {err.code().name}, want {code.name} ({err.details()})")
        expect(info is not None, f"GetAvatar {shown}: no google.rpc.ErrorInfo in grpc-status-details-bin")
        expect(
            (info.domain, info.reason) == (domain, reason),
            f"GetAvatar {shown}: ErrorInfo {info.domain}/{info.reason}, want {domain}/{reason}",
        )
        expect(
            not bad_request or (BadRequest in details and details[BadRequest].field_violations),
            f"GetAvatar {shown}: no google.rpc.BadRequest field violation",
        )
        return
    raise Unexpected(f"GetAvatar {shown} succeeded, want {code.name}")


def list_voices(client):
    """Reads one page of English female voices."""
    request = voices_pb2.ListVoicesRequest(page_size=PAGE_SIZE, language="English", gender="female")
    print(f"ListVoices language={request.language} gender={request.gender} page_size={PAGE_SIZE}")
    try:
        resp = client.call("ListVoices", request, stub=client.voices)
    except grpc.RpcError as err:
        raise Unexpected(f"ListVoices: {describe(err)}: {err.details()}") from None
    expect(len(resp.voices) == PAGE_SIZE, f"ListVoices: {len(resp.voices)} voices, want {PAGE_SIZE}")
    for v in resp.voices:
        expect(
            (v.language, v.gender) == ("English", "female"),
            f"ListVoices: {v.id} is {v.language} {v.gender} despite the filters",
        )
        print(f"    {v.id:<34} {v.name}")
    expect(resp.next_page_token, "ListVoices: no next_page_token, but the demo has more English female voices")


def create_and_watch(client):
    """Makes a video and follows it until it is rendered. The create carries
    a request_id, made once and reused by every retry of it: however often
    it is sent, HeyGen renders and bills one video."""
    request = videos_pb2.CreateVideoRequest(
        request_id=str(uuid.uuid4()),
        avatar=videos_pb2.AvatarVisual(avatar_id=VIDEO_AVATAR),
        script=videos_pb2.Script(text="Hello from the Python example, made through the gateway."),
        title="Python example",
    )
    print(f"CreateVideo avatar={VIDEO_AVATAR} title={json.dumps(request.title)} request_id=<a new UUID>")

    def create():
        try:
            return client.call("CreateVideo", request, stub=client.videos).video
        except grpc.RpcError as err:
            raise Unexpected(f"CreateVideo: {describe(err)}: {err.details()}") from None

    video = create()
    print(f"  created: {videos_pb2.VideoStatus.Name(video.status)}")
    again = create()  # as after a timeout: the same request_id
    expect(again.id == video.id, f"CreateVideo with the same request_id made a second video: {video.id}, then {again.id}")
    print("  sent again with the same request_id: the same video")

    last = None
    stream = client.videos.WatchVideo(
        videos_pb2.WatchVideoRequest(video_id=video.id), timeout=WATCH_TIMEOUT, metadata=client.metadata
    )
    try:
        for resp in stream:  # ends when the video is rendered (or failed)
            if last is None or resp.video.status != last.status:  # else a heartbeat
                print(f"  WatchVideo: {videos_pb2.VideoStatus.Name(resp.video.status)}")
            last = resp.video
    except grpc.RpcError as err:
        raise Unexpected(f"WatchVideo: {describe(err)}: {err.details()}") from None
    expect(
        last is not None and last.status == videos_pb2.VIDEO_STATUS_COMPLETED and last.video_url,
        f"WatchVideo ended at {last and videos_pb2.VideoStatus.Name(last.status)}, want a completed video with its URL",
    )
    url = urllib.parse.urlsplit(last.video_url)
    valid = last.url_expire_time.ToDatetime() - last.complete_time.ToDatetime()
    print(
        f"  {last.duration.ToTimedelta().total_seconds():.1f} s of video at https://{url.netloc}/.../"
        f"{posixpath.basename(url.path)}, valid for {valid.days} days"
    )


def main():
    # One line at a time, so that a FAIL line on stderr comes after what was
    # printed before it when both go to one pipe.
    sys.stdout.reconfigure(line_buffering=True)
    options = [
        ("grpc.service_config", json.dumps(SERVICE_CONFIG)),
        ("grpc.enable_retries", 1),
    ]
    # Plain text for the local demo server; grpc.secure_channel with
    # grpc.ssl_channel_credentials() (or a mesh's mTLS) anywhere else.
    with grpc.insecure_channel(ADDR, options=options) as channel:
        client = Client(channel, TOKEN)
        print(f"connected to {ADDR}")
        if TOKEN:
            print("sending authorization: Bearer $HEYGEN_GRPC_TOKEN with every call")
        else:
            print("no HEYGEN_GRPC_TOKEN: calling without a bearer token (only a gateway without -callers-file allows it)")
        first = list_studio_avatars(client)
        get_avatar(client, first)
        expect_error(client, "no_such_avatar", grpc.StatusCode.NOT_FOUND, "HEYGEN_NOT_FOUND", "api.heygen.com", False)
        expect_error(client, "../x", grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST", "heygen-grpc.gateway", True)
        list_voices(client)
        create_and_watch(client)
    print("OK: all checks passed")


if __name__ == "__main__":
    try:
        main()
    except Unexpected as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)
