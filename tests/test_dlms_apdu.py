"""DLMS request encoders, association logic and response builders (bindings/dlms_apdu.py).

Checked against: the shared vectors (every request vector rebuilt byte for byte, every UA/AARE
parsed, the response vectors rebuilt with the response builders), gurux_dlms 1.0.203 (a
GXDLMSClient configured alike must emit the same SNRM, AARQ, GET, SET, ACTION, release and
disconnect bytes; it must parse our UA/AARE and decode our A-XDR to the same values) and
dlms-cosem (A-XDR decoder, AARQ/GET parsers)."""
from __future__ import annotations

import datetime as dt
import math
import struct

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from meterpoll.bindings import dlms_apdu as d
from meterpoll.bindings.errors import (
    AddressMismatchError, ChecksumError, FrameError, ProtocolExceptionError, TruncatedFrameError,
)
from vectors import load_vectors

gx = pytest.importorskip("gurux_dlms")
from gurux_dlms import GXByteBuffer, GXDateTime, GXDLMSClient  # noqa: E402
from gurux_dlms.enums import Authentication as GxAuth  # noqa: E402
from gurux_dlms.enums import InterfaceType  # noqa: E402
from gurux_dlms.GXDLMS import GXDLMS  # noqa: E402
from gurux_dlms.GXDLMSSettings import GXDLMSSettings  # noqa: E402
from gurux_dlms.internal._GXCommon import _GXCommon  # noqa: E402
from gurux_dlms.internal._GXDataInfo import _GXDataInfo  # noqa: E402
from gurux_dlms.objects import GXDLMSClock, GXDLMSProfileGeneric, GXDLMSRegister  # noqa: E402

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])

VECTORS = load_vectors("dlms")


def vec(meaning_prefix: str) -> dict:
    hits = [v for v in VECTORS if v["meaning"].startswith(meaning_prefix)]
    assert len(hits) == 1, (meaning_prefix, len(hits))
    return hits[0]


def vbytes(v: dict) -> bytes:
    return bytes.fromhex(v["hex"])


def ctl(v: dict) -> d.Control:
    """The control field of an HDLC vector (from its bytes, via our address parser)."""
    f = d.parse_hdlc_frame(vbytes(v))
    return d.parse_control(f.control)


# ---------------------------------------------------------------------------------------------
# vectors: requests rebuilt byte for byte
# ---------------------------------------------------------------------------------------------

def _build_snrm_cosem(v):
    # decoded: dest "02 23 = upper 1, lower 17", src "0x21 = client 16"
    return d.snrm_frame(d.hdlc_server_address(1, 17), d.hdlc_client_address(16))


def _build_aarq_cosem(v):
    dec = v["decoded"]
    apdu = d.aarq(conformance=int(dec["conformance"].replace(" ", ""), 16), max_pdu_size=dec["max_pdu"],
                  dlms_version=dec["dlms_version"])
    return d.HdlcLink(16, 1, 17).send_apdu(apdu)[0]  # first I-frame after UA: N(S)=0 N(R)=0


def _build_disc_wb(v):
    return d.disc_frame(d.hdlc_server_address(1, 20), d.hdlc_client_address(32))


def _build_snrm_wb(v):
    return d.HdlcLink(32, 1, 20).snrm()


def _wb_session():
    """The wb-mqtt-serial poll: DISC, SNRM/UA, AARQ/AARE, two GETs, with the meter's frames
    fed back into the link so that the sequence numbers come from the link state."""
    link = d.HdlcLink(32, 1, 20)
    sent = [link.disc(), link.snrm()]
    link.accept_ua(vbytes(vec("UA with negotiated parameters (max info 128, window 1)")))
    sent += link.send_apdu(d.aarq(authentication=d.Authentication.LOW, password="111111",
                                  conformance=0x001E5D))
    aare = d.parse_hdlc_frame(vbytes(vec("AARE accepted; negotiated max PDU 100")))
    link.receive(aare.control)
    sent += link.send_apdu(d.get_request(3, "0.0.96.9.0.255", 3))
    link.receive(d.parse_hdlc_frame(vbytes(vec("GET.response-normal: structure{integer 0, enum 9}"))).control)
    sent += link.send_apdu(d.get_request(3, "0.0.96.9.0.255", 2))
    link.receive(d.parse_hdlc_frame(vbytes(vec("GET.response-normal: long (0x10) 30"))).control)
    return sent


def _build_get_wb_attr3(v):
    return _wb_session()[3]


def _build_get_wb_attr2(v):
    return _wb_session()[4]


def _build_aarq_kmethy(v):
    # 4-byte server address 00 02 00 23 (logical 1, physical 17), client 16, conformance 00 30 1D
    link = d.HdlcLink(16, 1, 17, 4)
    return link.send_apdu(d.aarq(conformance=0x00301D))[0]


def _build_get_forum(v):
    dec = v["decoded"]
    c = ctl(v)
    return d.i_frames(d.hdlc_server_address(1), d.hdlc_client_address(32),
                      d.get_request(dec["class"], dec["obis"], dec["attribute"]), ns=c.ns, nr=c.nr)[0]


def _build_aarq_ciphered(v):
    # The ciphered InitiateRequest is opaque here: take it from the vector, frame the rest.
    apdu = d.parse_hdlc_frame(vbytes(v), strip_llc=True).info
    glo = apdu[apdu.index(b"\xbe") + 4:]
    assert glo[0] == 0x21
    return d.HdlcLink(32, 1).send_apdu(d.aarq(authentication=d.Authentication.LOW, password="1" * 16,
                                              calling_ap_title=v["decoded"]["calling_AP_title"].encode(),
                                              ciphered_initiate=glo))[0]


def _build_disc_spodes(v):
    dec = v["decoded"]
    return d.disc_frame(d.hdlc_server_address(dec["server_logical"], dec["server_physical"]),
                        d.hdlc_client_address(dec["client"]))


def _gurux_generated_session():
    """Client 16 -> server 1/17 after AARQ/AARE: GETs 1.0.1.8.0.255 attr 2, attr 3, 1.0.32.7.0.255
    attr 2, each answered by one I-frame of a server link."""
    client = d.HdlcLink(16, 1, 17)
    server = d.HdlcLink(16, 1, 17, role="server")
    server.accept_snrm(client.snrm())
    sent = []

    def exchange(apdu):
        frames = client.send_apdu(apdu)
        for f in frames:
            server.receive(d.parse_hdlc_frame(f).control)
        for f in server.send_apdu(d.get_response_normal(d.axdr_null())):
            client.receive(d.parse_hdlc_frame(f).control)
        sent.extend(frames)
    exchange(d.aarq())
    for obis, attr in (("1.0.1.8.0.255", 2), ("1.0.1.8.0.255", 3), ("1.0.32.7.0.255", 2)):
        exchange(d.get_request(3, obis, attr))
    return sent


def _build_gurux_get(k):
    return lambda v: _gurux_generated_session()[k]


def _build_get_entry(v):
    dec = v["decoded"]
    c = ctl(v)
    acc = d.entry_descriptor(dec["from_entry"], dec["to_entry"], dec["from_selected_value"],
                             dec["to_selected_value"])
    assert acc.selector == dec["access_selector"]
    return d.i_frames(d.hdlc_server_address(1, 17), d.hdlc_client_address(16),
                      d.get_request(7, "1.0.99.1.0.255", 2, access=acc), ns=c.ns, nr=c.nr)[0]


def _build_wrapper_aarq(v):
    dec = v["decoded"]
    return d.wrapper_frame(d.aarq(conformance=0x401E5D), dec["source_wport"], dec["dest_wport"])


def _build_wrapper_get(v):
    return d.wrapper_frame(d.get_request(3, "1.0.1.8.0.255", 2), 16, 1)


def _build_get_next(v):
    return d.get_request_next(v["decoded"]["block_number"])


def _build_wrapper_hexing(v):
    dec = v["decoded"]
    w = dec["wrapper"]
    iip = int(dec["iip"].split()[0], 16)
    apdu = d.get_request(dec["class"], dec["obis"], dec["attribute"], invoke_id=iip & 0x0F)
    assert dec["access_selection"] == 0
    return d.wrapper_frame(apdu, w["src"], w["dst"], w["version"])


REQUEST_BUILDERS = {
    "SNRM (control 0x93) from public client 16": _build_snrm_cosem,
    "I-frame N(S)=0 N(R)=0 carrying AARQ": _build_aarq_cosem,
    "DISC (0x53) from client 32": _build_disc_wb,
    "SNRM from client 32 to server 1/20": _build_snrm_wb,
    "GET.request-normal, invoke-id 1 (C1 = priority high": _build_get_wb_attr3,
    "GET.request-normal 0.0.96.9.0.255 attribute 2": _build_get_wb_attr2,
    "AARQ, no security, conformance 00 30 1D": _build_aarq_kmethy,
    "GET.request-normal class 15 (Association LN)": _build_get_forum,
    "AARQ with ciphered LN context": _build_aarq_ciphered,
    "DISC (0x53) to a SPODES-mode meter": _build_disc_spodes,
    "GET.request-normal class 3 1.0.1.8.0.255": _build_gurux_get(1),
    "GET.request-normal 1.0.1.8.0.255 attribute 3": _build_gurux_get(2),
    "GET.request-normal 1.0.32.7.0.255": _build_gurux_get(3),
    "GET.request-normal 1.0.99.1.0.255 attribute 2 with selective access 02": _build_get_entry,
    "AARQ over TCP": _build_wrapper_aarq,
    "GET.request-normal 1.0.1.8.0.255 attr 2 over the TCP wrapper": _build_wrapper_get,
    "GET.request-next": _build_get_next,
    "TCP wrapper (src wPort 1, dst wPort 1, length 13)": _build_wrapper_hexing,
    "same event log, attribute 2 (buffer)": _build_wrapper_hexing,
}


def test_every_request_vector_has_a_builder():
    requests = [v for v in VECTORS if v["direction"] == "request"]
    assert len(requests) >= 19
    for v in requests:
        hits = [p for p in REQUEST_BUILDERS if v["meaning"].startswith(p)]
        assert len(hits) == 1, v["meaning"]


@pytest.mark.parametrize("prefix", sorted(REQUEST_BUILDERS))
def test_request_vector_rebuilt(prefix):
    v = vec(prefix)
    assert REQUEST_BUILDERS[prefix](v).hex().upper() == v["hex"].upper()


def test_wrapper_vector_fields():
    for v in VECTORS:
        if v["framing"] != "wrapper":
            continue
        version, src, dst, apdu = d.parse_wrapper(vbytes(v))
        dec = v["decoded"]
        if "header" in dec:
            h = bytes.fromhex(dec["header"].replace(" ", ""))
            assert struct.unpack(">HHHH", h) == (version, src, dst, len(apdu))
            continue
        w = dec.get("wrapper", dec)
        assert (version, src, dst) == (w["version"], w.get("source_wport", w.get("src")),
                                       w.get("dest_wport", w.get("dst")))
        if "length" in w:
            assert len(apdu) == w["length"]


# ---------------------------------------------------------------------------------------------
# vectors: UA / AARE parsed, responses rebuilt by the builders
# ---------------------------------------------------------------------------------------------

def _gurux_ua(info: bytes) -> tuple[int, int, int, int]:
    """What gurux reads from a UA information field, mapped back to the server's view."""
    c = GXDLMSClient(True, 16, 1)
    c.snrmRequest()
    c.parseUAResponse(GXByteBuffer(info))
    h = c.hdlcSettings
    return h.maxInfoRX, h.maxInfoTX, h.windowSizeRX, h.windowSizeTX


UA_VECTORS = [v for v in VECTORS if v["direction"] == "response" and v["framing"] == "hdlc"
              and d.parse_hdlc_frame(vbytes(v)).control == d.UA]


def test_ua_vectors_present():
    assert len(UA_VECTORS) == 4


@pytest.mark.parametrize("v", UA_VECTORS, ids=lambda v: v["_id"])
def test_ua_vector_parsed(v):
    frame = d.parse_hdlc_frame(vbytes(v))
    p = d.parse_ua(frame)
    dec = v["decoded"]
    assert (p.max_info_tx, p.max_info_rx, p.window_tx, p.window_rx) == _gurux_ua(frame.info)
    if "params" in dec:
        # "05 01 9A | 06 01 9A | ...": the recorded field bytes
        fields = {int(f.split()[0], 16): int("".join(f.split()[2:]), 16) for f in dec["params"].split("|")[1:]}
        assert (p.max_info_tx, p.max_info_rx, p.window_tx, p.window_rx) == (fields[5], fields[6], fields[7], fields[8])
        # Erratum: the vector's decoded max_info_tx/rx say 410, but the field is 1 byte 0x9A = 154
        # (gurux reads 154 too); 410 would be 0x019A.
        assert dec["max_info_tx"] in (p.max_info_tx, 0x100 + p.max_info_tx)
    else:
        if "max_info_tx" in dec:
            assert (p.max_info_tx, p.max_info_rx) == (dec["max_info_tx"], dec["max_info_rx"])
            assert p.window_tx == p.window_rx == dec["window"]
        if "HCS" in dec:
            raw = vbytes(v)
            pos = 3 + len(frame.dest) + len(frame.src) + 1
            assert raw[pos:pos + 2].hex().upper() == dec["HCS"].replace(" ", "")
    if "dest" in dec:
        assert frame.dest.hex() == "03" and frame.dest_upper == 1
    if "src" in dec:
        assert frame.src.hex() == dec["src"].replace(" ", "") and (frame.src_upper, frame.src_lower) == (1, 17)


def test_ua_negotiation_lower_of_both():
    v = vec("UA (0x73) with negotiated HDLC parameters")
    link = d.HdlcLink(16, 1, 17, params=d.HdlcParameters(256, 512, 1, 1))
    link.snrm()
    neg = link.accept_ua(vbytes(v))
    answered = d.parse_ua(vbytes(v))
    assert neg.max_info_tx == min(256, answered.max_info_rx)
    assert neg.max_info_rx == min(512, answered.max_info_tx)
    assert (neg.window_tx, neg.window_rx) == (1, 1)


def test_aare_vectors_parsed():
    v = vec("I-frame (control 0x30: N(R)=1 N(S)=0) carrying AARE")
    f = d.parse_hdlc_frame(vbytes(v), strip_llc=True)
    dec = v["decoded"]
    assert f.llc.hex().upper() == dec["LLC"].replace(" ", "")
    info = d.parse_aare(f.info)
    assert info.accepted and info.result == 0 and dec["result"].endswith("accepted")
    assert info.diagnostic == 0 and info.diagnostic_source == "user" and dec["diagnostic"].endswith("null")
    assert info.max_pdu_size == dec["negotiated_max_pdu"]
    assert info.vaa_name == int(dec["vaa_name"].split()[0], 16)
    ir = dec["InitiateResponse"].split()
    assert info.conformance == int(ir[4], 16) and info.dlms_version == int(ir[2], 16)
    assert info.logical_name

    v = vec("AARE accepted; negotiated max PDU 100")
    info = d.parse_aare(d.parse_hdlc_frame(vbytes(v), strip_llc=True).info)
    assert info.accepted and v["decoded"]["result"] == "accepted"
    assert info.max_pdu_size == v["decoded"]["negotiated_max_pdu"]
    assert info.conformance == int(v["decoded"]["conformance"].replace(" ", ""), 16)


def test_aare_vectors_agree_with_gurux():
    for prefix in ("I-frame (control 0x30: N(R)=1 N(S)=0) carrying AARE", "AARE accepted; negotiated max PDU 100"):
        apdu = d.parse_hdlc_frame(vbytes(vec(prefix)), strip_llc=True).info
        info = d.parse_aare(apdu)
        c = GXDLMSClient(True, 16, 1)
        c.parseAareResponse(GXByteBuffer(apdu))
        assert d.conformance_to_gurux(info.conformance) == int(c.negotiatedConformance)
        assert c.maxReceivePDUSize == info.max_pdu_size


def test_response_vectors_rebuilt():
    # GET.response-normal scaler_unit {0, 9} from the wb-mqtt-serial meter (iip 81), control 52
    v = vec("GET.response-normal: structure{integer 0, enum 9}")
    f = d.parse_hdlc_frame(vbytes(v))
    c = d.parse_control(f.control)
    apdu = d.get_response_normal(d.scaler_unit(v["decoded"]["scaler"], int(v["decoded"]["unit"].split()[0])), iip=0x81)
    assert d.i_frames(f.dest, f.src, apdu, ns=c.ns, nr=c.nr, llc=d.LLC_RESPONSE)[0] == vbytes(v)
    v = vec("GET.response-normal: long (0x10) 30")
    f = d.parse_hdlc_frame(vbytes(v))
    c = d.parse_control(f.control)
    apdu = d.get_response_normal(d.axdr_int16(v["decoded"]["value"]), iip=0x81)
    assert d.i_frames(f.dest, f.src, apdu, ns=c.ns, nr=c.nr, llc=d.LLC_RESPONSE)[0] == vbytes(v)
    v = vec("GET.response-normal, data = double-long-unsigned")
    assert d.get_response_normal(d.axdr_uint32(v["decoded"]["value"])) == vbytes(v)
    # UI push frame of 579 bytes (11-bit length, format A2 43) rebuilt around its APDU
    v = vec("UI frame (control 0x13)")
    f = d.parse_hdlc_frame(vbytes(v), strip_llc=True)
    assert f.control == d.UI and len(vbytes(v)) - 2 == 0x243
    assert d.ui_frame(f.dest, f.src, f.info) == vbytes(v)
    # UDP wrapper from a meter
    v = vec("UDP wrapper message from a meter")
    _, src, dst, apdu = d.parse_wrapper(vbytes(v))
    assert d.wrapper_frame(apdu, src, dst) == vbytes(v)


def test_datablock_vectors_rebuilt():
    first = vec("GET.response-with-datablock, last-block=0, block 1")
    last = vec("GET.response-with-datablock, last-block=1, block 0x13 = 19")
    for v in (first, last):
        dec = v["decoded"]
        raw = vbytes(v)
        n = dec["raw_data_len"]
        payload = raw[-n:]
        blocks = d.get_response_blocks(payload, n, first_block=dec["block_number"], iip=raw[2])
        assert len(blocks) == 1
        b = blocks[0]
        if not dec["last_block"]:
            # a single block is the last one: rebuild the non-last block from a 2-block split
            b = d.get_response_blocks(payload + b"\x00", n, first_block=dec["block_number"], iip=raw[2])[0]
        assert b == raw
    # the first block's raw data starts the profile buffer: array of 1440 rows
    dec = first["decoded"]
    raw = vbytes(first)
    payload = raw[-dec["raw_data_len"]:]
    assert payload[:4] == b"\x01\x82" + dec["array_len"].to_bytes(2, "big")
    row = dec["first_row"]
    # Erratum: the decoded clock "2019-12-19 04:02:00.00" reads the weekday byte (04, Thursday)
    # as the hour; the bytes say 02:00:00.00 (gurux agrees, checked below).
    assert row["clock"].startswith("2019-12-19") and "-60 (0xFFC4)" in row["clock"]
    dtm = d.DateTime(2019, 12, 19, dt.date(2019, 12, 19).isoweekday(), 2, 0, 0, 0, -60, 0)
    got = _GXCommon.getData(GXDLMSSettings(False, None), GXByteBuffer(b"\x19" + payload[8:20]), _GXDataInfo())
    assert got.value == dt.datetime(2019, 12, 19, 2, 0, 0, tzinfo=dt.timezone(dt.timedelta(minutes=60)))
    expected_row = d.axdr_structure([d.axdr_date_time_octets(dtm), d.axdr_uint8(row["col2_unsigned"]),
                                     d.axdr_uint32(row["col3"]), d.axdr_uint32(row["col4"])])
    assert payload[4:4 + len(expected_row)] == expected_row


# ---------------------------------------------------------------------------------------------
# HDLC framing
# ---------------------------------------------------------------------------------------------

def test_all_hdlc_vectors_parse_and_rebuild():
    n = 0
    for v in VECTORS:
        if v["framing"] != "hdlc":
            continue
        raw = vbytes(v)
        f = d.parse_hdlc_frame(raw)
        assert d.hdlc_frame(f.dest, f.src, f.control, f.info, segmented=f.segmented) == raw
        n += 1
    assert n >= 15


def test_server_address_forms():
    assert d.hdlc_server_address(1) == b"\x03"
    assert d.hdlc_server_address(1, 17) == b"\x02\x23"
    assert d.hdlc_server_address(1, 17, 4) == b"\x00\x02\x00\x23"
    assert d.hdlc_client_address(16) == b"\x21"
    with pytest.raises(ValueError):
        d.hdlc_server_address(0x80, 1, 2)
    with pytest.raises(ValueError):
        d.hdlc_server_address(1, 1, 3)


@FAST
@given(st.integers(0, 0x3FFF), st.integers(0, 0x3FFF), st.sampled_from([1, 2, 4]))
def test_server_address_matches_gurux(logical, physical, size):
    if size == 1:
        logical &= 0x7F
        ours = d.hdlc_server_address(logical)
        theirs = GXDLMS.getAddressBytes(logical, 1)
    else:
        if size == 2:
            logical, physical = logical & 0x7F, physical & 0x7F
        assume(logical >= 1)  # gurux drops to 1 byte when the upper address is 0
        ours = d.hdlc_server_address(logical, physical, size)
        theirs = GXDLMS.getAddressBytes(GXDLMSClient.getServerAddress(logical, physical, size), size)
    assert ours == bytes(theirs)
    raw, upper, lower, end = d.parse_hdlc_address(ours + b"\x21")
    assert raw == ours and end == len(ours) and upper == logical
    assert lower == (None if size == 1 else physical)


def test_control_bytes():
    assert d.i_control(0, 0) == 0x10 and d.i_control(1, 1) == 0x32 and d.i_control(0, 1) == 0x30
    assert d.rr_control(1) == 0x31 and d.rnr_control(2) == 0x55
    assert d.parse_control(0x93).kind == "SNRM" and d.parse_control(0x73).kind == "UA"
    assert d.parse_control(0x53).kind == "DISC" and d.parse_control(0x1F).kind == "DM"
    assert d.parse_control(0x13).kind == "UI" and d.parse_control(0x97).kind == "FRMR"
    for ns in range(8):
        for nr in range(8):
            for pf in (False, True):
                assert d.parse_control(d.i_control(ns, nr, pf)) == ("I", ns, nr, pf)
                assert d.parse_control(d.rr_control(nr, pf)) == ("RR", None, nr, pf)


def test_frame_errors():
    raw = vbytes(vec("I-frame N(S)=0 N(R)=0 carrying AARQ"))
    for n in range(len(raw)):
        with pytest.raises(FrameError):
            d.parse_hdlc_frame(raw[:n])
    for i in range(1, len(raw) - 1):
        for bit in (0x01, 0x80):
            bad = bytearray(raw)
            bad[i] ^= bit
            with pytest.raises(FrameError):
                d.parse_hdlc_frame(bytes(bad))
    bad = bytearray(raw)
    bad[-2] ^= 0x40
    with pytest.raises(ChecksumError):
        d.parse_hdlc_frame(bytes(bad))
    with pytest.raises(TruncatedFrameError):
        d.parse_hdlc_frame(raw[:-3])


@FAST
@given(st.binary(max_size=700), st.integers(16, 300), st.integers(0, 7), st.integers(0, 7),
       st.sampled_from([d.LLC_REQUEST, d.LLC_RESPONSE, None]))
def test_segmentation_round_trip(apdu, max_info, ns, nr, llc):
    dest, src = d.hdlc_server_address(1, 17), d.hdlc_client_address(16)
    frames = d.i_frames(dest, src, apdu, ns=ns, nr=nr, max_info=max_info, llc=llc)
    payload = (llc or b"") + apdu
    assert len(frames) == max(1, math.ceil(len(payload) / max_info))
    got = b""
    for k, raw in enumerate(frames):
        f = d.parse_hdlc_frame(raw)
        assert f.segmented == (k < len(frames) - 1)
        assert len(f.info) <= max_info
        assert d.parse_control(f.control) == ("I", (ns + k) % 8, nr, True)
        got += f.info
    assert got == payload


def test_segmented_response_parsed_by_gurux():
    """A long GET.response split into segmented I-frames by our server link is reassembled and
    decoded by a gurux client; between segments gurux's RR equals our client link's RR."""
    values = list(range(0, 4000, 7))
    data = d.axdr_array(d.axdr_uint32(x) for x in values)
    client = d.HdlcLink(16, 1, 17)
    server = d.HdlcLink(16, 1, 17, role="server", params=d.HdlcParameters(128, 128))
    c = GXDLMSClient(True, 16, GXDLMSClient.getServerAddress(1, 17))
    snrm = client.snrm()
    assert _hex(c.snrmRequest()) == snrm.hex()
    ua = server.accept_snrm(snrm)
    client.accept_ua(ua)
    c.parseUAResponse(GXByteBuffer(d.parse_hdlc_frame(ua).info))
    get = client.send_apdu(d.get_request(1, "0.0.96.1.0.255", 2))
    assert _hex(c._read("0.0.96.1.0.255", 1, 2)) == [f.hex() for f in get]
    server.receive(d.parse_hdlc_frame(get[0]).control)
    frames = server.send_apdu(d.get_response_normal(data))
    assert len(frames) > 5
    reply = gx.GXReplyData()
    for raw in frames:
        f = d.parse_hdlc_frame(raw)
        client.receive(f.control)
        c.getData(GXByteBuffer(raw), reply)
        if f.segmented:
            assert reply.isMoreData()
            rr = client.rr()
            assert _hex(c.receiverReady(reply)) == rr.hex()
            server.receive(d.parse_hdlc_frame(rr).control)
    assert not reply.isMoreData() and list(reply.value) == values


# ---------------------------------------------------------------------------------------------
# HdlcLink: sequence numbers
# ---------------------------------------------------------------------------------------------

def test_link_sequence_checks():
    client = d.HdlcLink(16, 1, 17)
    server = d.HdlcLink(16, 1, 17, role="server")
    ua = server.accept_snrm(client.snrm())
    client.accept_ua(ua)
    for k in range(20):  # wraps mod 8
        for f in client.send_apdu(d.get_request(3, "1.0.1.8.0.255", 2)):
            server.receive(d.parse_hdlc_frame(f).control)
        for f in server.send_apdu(d.get_response_normal(d.axdr_uint32(k))):
            client.receive(d.parse_hdlc_frame(f).control)
    # a repeated frame (same N(S)) is refused
    frames = server.send_apdu(d.get_response_normal(d.axdr_uint32(1)))
    client_state = (client.vs, client.vr)
    client.receive(d.parse_hdlc_frame(frames[0]).control)
    with pytest.raises(d.SequenceError):
        client.receive(d.parse_hdlc_frame(frames[0]).control)
    assert client_state[1] != client.vr
    # N(R) acknowledging a frame never sent is refused
    with pytest.raises(d.SequenceError):
        client.receive(d.i_control(client.vr, (client.vs + 3) % 8))
    # address mismatch on the UA
    other = d.HdlcLink(16, 1, 18, role="server")
    with pytest.raises(AddressMismatchError):
        d.HdlcLink(16, 1, 17).accept_ua(other.ua())


def test_segmented_exchange_with_rr():
    client = d.HdlcLink(16, 1, 17, params=d.HdlcParameters(64, 64))
    server = d.HdlcLink(16, 1, 17, role="server", params=d.HdlcParameters(512, 512))
    client.accept_ua(server.accept_snrm(client.snrm()))
    assert client.max_info_tx == 64 and server.max_info_tx == 64
    big = d.get_response_normal(d.axdr_octet_string(bytes(range(256)) * 2))
    frames = server.send_apdu(big)
    got = b""
    for raw in frames:
        f = d.parse_hdlc_frame(raw, strip_llc=not got)
        client.receive(f.control)
        got += f.info
        if f.segmented:
            rr = d.parse_hdlc_frame(client.rr())
            assert d.parse_control(rr.control) == ("RR", None, client.vr, True)
            server.receive(rr.control)
    assert got == big


def test_dm_and_other_answers():
    dest, src = d.hdlc_client_address(16), d.hdlc_server_address(1, 17)
    with pytest.raises(ProtocolExceptionError) as e:
        d.parse_ua(d.dm_frame(dest, src))
    assert e.value.code == d.DM
    with pytest.raises(FrameError):
        d.parse_ua(d.disc_frame(dest, src))


# ---------------------------------------------------------------------------------------------
# gurux_dlms cross-check: whole client sessions
# ---------------------------------------------------------------------------------------------

def _hex(x):
    if x is None:
        return None
    if isinstance(x, list):
        out = []
        for i in x:
            out.extend(_hex(i) if isinstance(i, list) else [_hex(i)])
        return out
    return bytes(x).hex()


obis_st = st.tuples(*[st.integers(0, 255)] * 6).map(lambda t: ".".join(map(str, t)))
password_st = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40)
conf_st = st.integers(0, 0xFFFFFF)


@st.composite
def session_st(draw):
    size = draw(st.sampled_from([1, 2, 4]))
    logical = draw(st.integers(1, 0x7F if size < 4 else 0x3FFF))
    physical = None if size == 1 else draw(st.integers(0, 0x7F if size == 2 else 0x3FFF))
    return dict(
        client=draw(st.integers(1, 0x7F)), logical=logical, physical=physical, size=size,
        auth=draw(st.sampled_from([d.Authentication.NONE, d.Authentication.LOW])),
        password=draw(password_st),
        conformance=draw(conf_st), max_pdu=draw(st.integers(64, 0xFFFF)),
        params=d.HdlcParameters(draw(st.integers(128, 512)), draw(st.integers(64, 512)),
                                draw(st.integers(1, 7)), draw(st.integers(1, 7))),
        reads=draw(st.lists(st.tuples(st.integers(1, 0xFFFF), obis_st, st.integers(1, 20)),
                            min_size=1, max_size=4)),
    )


def _gurux_client(s, interface=InterfaceType.HDLC, logical_name=True):
    auth = GxAuth.LOW if s["auth"] == d.Authentication.LOW else GxAuth.NONE
    if interface == InterfaceType.HDLC and s["physical"] is not None:
        server = GXDLMSClient.getServerAddress(s["logical"], s["physical"], s["size"])
    else:
        server = s["logical"]
    c = GXDLMSClient(logical_name, s["client"], server, auth,
                     s["password"] if auth == GxAuth.LOW else None, interface)
    if interface == InterfaceType.HDLC:
        c.serverAddressSize = s["size"]
        h = c.hdlcSettings
        p = s["params"]
        h.maxInfoTX, h.maxInfoRX, h.windowSizeTX, h.windowSizeRX = p.max_info_tx, p.max_info_rx, p.window_tx, p.window_rx
    c.proposedConformance = d.conformance_to_gurux(s["conformance"])
    c.maxReceivePDUSize = s["max_pdu"]
    return c


def _our_aarq(s, logical_name=True):
    return d.aarq(logical_name=logical_name, authentication=s["auth"],
                  password=s["password"] if s["auth"] == d.Authentication.LOW else None,
                  conformance=s["conformance"], max_pdu_size=s["max_pdu"])


@SLOW
@given(session_st())
def test_hdlc_session_matches_gurux(s):
    c = _gurux_client(s)
    client = d.HdlcLink(s["client"], s["logical"], s["physical"], s["size"], params=s["params"])
    server = d.HdlcLink(s["client"], s["logical"], s["physical"], s["size"], role="server",
                        params=d.HdlcParameters(2030, 2030, 7, 7))
    snrm = client.snrm()
    assert _hex(c.snrmRequest()) == snrm.hex()
    ua = server.accept_snrm(snrm)
    c.parseUAResponse(GXByteBuffer(d.parse_hdlc_frame(ua).info))
    client.accept_ua(ua)
    assert (c.hdlcSettings.maxInfoTX, c.hdlcSettings.maxInfoRX) == (client.max_info_tx, client.max_info_rx)
    assert (c.hdlcSettings.windowSizeTX, c.hdlcSettings.windowSizeRX) == (client.window_tx, client.window_rx)

    apdu = _our_aarq(s)
    # gurux keeps 3 bytes spare in a first segment; compare frames where both use one frame
    single = len(apdu) + 3 <= client.max_info_tx - 3
    ours = client.send_apdu(apdu)
    theirs = _hex(c.aarqRequest())
    if single:
        assert theirs == [f.hex() for f in ours]
    else:
        assert b"".join(d.parse_hdlc_frame(bytes.fromhex(f)).info for f in theirs) == \
            b"".join(d.parse_hdlc_frame(f).info for f in ours)
        assume(False)  # frame counts differ from here on; covered by the single-frame examples
    for f in ours:
        server.receive(d.parse_hdlc_frame(f).control)
    aare_apdu = d.aare(conformance=s["conformance"] & 0x7FFFFF, max_pdu_size=s["max_pdu"])
    for f in server.send_apdu(aare_apdu):
        client.receive(d.parse_hdlc_frame(f).control)
    c.parseAareResponse(GXByteBuffer(aare_apdu))

    for class_id, obis, attr in s["reads"]:
        ours = client.send_apdu(d.get_request(class_id, obis, attr))
        assert _hex(c._read(obis, class_id, attr)) == [f.hex() for f in ours]
        for f in ours:
            server.receive(d.parse_hdlc_frame(f).control)
        for f in server.send_apdu(d.get_response_normal(d.axdr_uint16(attr))):
            client.receive(d.parse_hdlc_frame(f).control)
    ours = client.send_apdu(d.rlrq(0))
    assert _hex(c.releaseRequest()) == [f.hex() for f in ours]
    assert _hex(c.disconnectRequest()) == client.disc().hex()


@SLOW
@given(session_st(), st.booleans())
def test_wrapper_session_matches_gurux(s, logical_name):
    c = _gurux_client(s, InterfaceType.WRAPPER, logical_name)
    assert c.snrmRequest() is None
    w = lambda apdu: d.wrapper_frame(apdu, s["client"], s["logical"]).hex()  # noqa: E731
    assert _hex(c.aarqRequest()) == [w(_our_aarq(s, logical_name))]
    if logical_name:
        c.parseAareResponse(GXByteBuffer(d.aare(conformance=s["conformance"], max_pdu_size=s["max_pdu"])))
        for class_id, obis, attr in s["reads"]:
            assert _hex(c._read(obis, class_id, attr)) == [w(d.get_request(class_id, obis, attr))]
        assert _hex(c.releaseRequest()) == [w(d.rlrq(0))]


@FAST
@given(st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=79), st.integers(32, 128))
def test_long_aarq_segments_carry_gurux_payload(password, max_tx):
    # gurux writes the AARQ length as one byte even past 127 (not BER); stay below that
    s = dict(client=32, logical=1, physical=17, size=2, auth=d.Authentication.LOW, password=password,
             conformance=0x001E1D, max_pdu=0xFFFF, params=d.HdlcParameters(max_tx, 128, 1, 1))
    c = _gurux_client(s)
    link = d.HdlcLink(32, 1, 17, params=s["params"])
    c.snrmRequest()
    link.snrm()
    ua = d.HdlcLink(32, 1, 17, role="server", params=d.HdlcParameters(2030, 2030)).accept_snrm(link.snrm())
    c.parseUAResponse(GXByteBuffer(d.parse_hdlc_frame(ua).info))
    link.accept_ua(ua)
    ours = link.send_apdu(_our_aarq(s))
    theirs = [bytes.fromhex(f) for f in _hex(c.aarqRequest())]
    info = lambda fs: b"".join(d.parse_hdlc_frame(f).info for f in fs)  # noqa: E731
    assert info(ours) == info(theirs)
    for k, f in enumerate(ours):
        fr = d.parse_hdlc_frame(f)
        assert len(fr.info) <= max_tx and fr.segmented == (k < len(ours) - 1)
        assert d.parse_control(fr.control) == ("I", k % 8, 0, True)


def test_profile_clock_and_list_requests_match_gurux():
    c = GXDLMSClient(True, 16, 1, GxAuth.NONE, None, InterfaceType.PDU)
    c.negotiatedConformance = 0xFFFFFF
    utc = dt.timezone.utc
    pg = GXDLMSProfileGeneric("1.0.99.1.0.255")
    for start, end in ((dt.datetime(2024, 1, 1, tzinfo=utc), dt.datetime(2024, 1, 2, tzinfo=utc)),
                       (dt.datetime(2023, 6, 30, 12, 15, 45, tzinfo=utc), dt.datetime(2023, 7, 1, 0, 0, tzinfo=utc))):
        theirs = _hex(c.readRowsByRange(pg, start, end))
        # gurux: weekday not specified, hundredths 0, deviation 0 (UTC), status 0
        mk = lambda t: d.DateTime(t.year, t.month, t.day, 0xFF, t.hour, t.minute, t.second, 0, 0, 0)  # noqa: E731
        ours = d.get_request(7, "1.0.99.1.0.255", 2, access=d.range_descriptor(mk(start), mk(end)))
        assert theirs == [ours.hex()]
    for index, count in ((1, 10), (5, 1), (100, 0)):
        theirs = _hex(c.readRowsByEntry(pg, index, count))
        ours = d.get_request(7, "1.0.99.1.0.255", 2,
                             access=d.entry_descriptor(index, index + count - 1 if count else 0))
        assert theirs == [ours.hex()]
    clk = GXDLMSClock("0.0.1.0.0.255")
    t = dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=utc)
    clk.time = GXDateTime(t)
    assert _hex(c.write(clk, 2)) == [d.set_clock_request(d.DateTime(2024, 5, 6, 0xFF, 7, 8, 9, 0, 0, 0)).hex()]
    assert _hex(clk.adjustToQuarter(c)) == [d.clock_action_request(d.ClockMethod.ADJUST_TO_QUARTER).hex()]
    assert _hex(clk.adjustToMeasuringPeriod(c)) == [d.clock_action_request(d.ClockMethod.ADJUST_TO_MEASURING_PERIOD).hex()]
    assert _hex(clk.adjustToMinute(c)) == [d.clock_action_request(d.ClockMethod.ADJUST_TO_MINUTE).hex()]
    for sec in (-900, -1, 0, 30, 900):
        assert _hex(clk.shiftTime(c, sec)) == [d.clock_action_request(d.ClockMethod.SHIFT_TIME, shift_seconds=sec).hex()]
    regs = [(GXDLMSRegister("1.0.1.8.0.255"), 2), (GXDLMSRegister("1.0.2.8.0.255"), 3), (GXDLMSRegister("1.0.32.7.0.255"), 2)]
    theirs = _hex(c.readList(regs))
    ours = d.get_request_with_list([(3, r.logicalName, a) for r, a in regs])
    assert theirs == [ours.hex()]


@FAST
@given(st.integers(-2**31, 2**31 - 1), obis_st, st.integers(0, 15))
def test_set_request_matches_gurux(value, obis, invoke_id):
    from gurux_dlms.objects import GXDLMSData
    from gurux_dlms.enums import DataType as GxType
    c = GXDLMSClient(True, 16, 1, GxAuth.NONE, None, InterfaceType.PDU)
    c.settings.invokeId = invoke_id  # gurux's setInvokeID sets another attribute than it reads
    obj = GXDLMSData(obis)
    obj.value = value
    obj.setDataType(2, GxType.INT32)
    assert _hex(c.write(obj, 2)) == [d.set_request(1, obis, 2, d.axdr_int32(value), invoke_id=invoke_id).hex()]


# ---------------------------------------------------------------------------------------------
# A-XDR encoders vs gurux and dlms-cosem decoders
# ---------------------------------------------------------------------------------------------

_INTS = {
    "int8": (d.axdr_int8, -2**7, 2**7 - 1), "int16": (d.axdr_int16, -2**15, 2**15 - 1),
    "int32": (d.axdr_int32, -2**31, 2**31 - 1), "int64": (d.axdr_int64, -2**63, 2**63 - 1),
    "uint8": (d.axdr_uint8, 0, 2**8 - 1), "uint16": (d.axdr_uint16, 0, 2**16 - 1),
    "uint32": (d.axdr_uint32, 0, 2**32 - 1), "uint64": (d.axdr_uint64, 0, 2**64 - 1),
    "enum": (d.axdr_enum, 0, 255),
}

datetime_st = st.builds(
    d.DateTime, st.integers(1970, 2100), st.integers(1, 12), st.integers(1, 28),
    st.one_of(st.integers(1, 7), st.just(0xFF)), st.integers(0, 23), st.integers(0, 59),
    st.integers(0, 59), st.one_of(st.integers(0, 99), st.just(0xFF)),
    st.one_of(st.integers(-720, 720), st.just(-0x8000)), st.integers(0, 255))


def _scalar_st(cosem_ok: bool):
    ints = [st.tuples(st.just(k), st.integers(lo, hi)) for k, (_, lo, hi) in _INTS.items()]
    base = ints + [
        st.tuples(st.just("null"), st.none()),
        st.tuples(st.just("bool"), st.booleans()),
        st.tuples(st.just("octets"), st.binary(max_size=40)),
        st.tuples(st.just("visible"), st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30)),
        st.tuples(st.just("datetime"), datetime_st),
    ]
    if not cosem_ok:  # dlms-cosem 25.1 has no decoder for these
        base += [
            st.tuples(st.just("bits"), st.text(st.sampled_from("01"), max_size=40)),
            st.tuples(st.just("float32"), st.floats(width=32, allow_nan=False)),
            st.tuples(st.just("float64"), st.floats(allow_nan=False)),
            st.tuples(st.just("utf8"), st.text(max_size=20)),
        ]
    return st.one_of(base)


def _tree_st(cosem_ok: bool):
    return st.recursive(
        _scalar_st(cosem_ok),
        lambda kids: st.one_of(st.tuples(st.just("array"), st.lists(kids, max_size=4)),
                               st.tuples(st.just("struct"), st.lists(kids, max_size=4))),
        max_leaves=12)


def encode(node) -> bytes:
    kind, v = node
    if kind in _INTS:
        return _INTS[kind][0](v)
    return {
        "null": lambda v: d.axdr_null(), "bool": d.axdr_bool, "octets": d.axdr_octet_string,
        "visible": d.axdr_visible_string, "datetime": d.axdr_date_time, "bits": d.axdr_bit_string,
        "float32": d.axdr_float32, "float64": d.axdr_float64, "utf8": d.axdr_utf8_string,
        "array": lambda v: d.axdr_array(encode(k) for k in v),
        "struct": lambda v: d.axdr_structure(encode(k) for k in v),
    }[kind](v)


def _check_gurux(node, got):
    kind, v = node
    if kind in ("array", "struct"):
        assert len(got) == len(v)
        for k, g in zip(v, got):
            _check_gurux(k, g)
    elif kind == "null":
        assert got is None
    elif kind == "bits":
        packed = d.axdr_bit_string(v)[1 + len(d.axdr_length(len(v))):]
        assert bytes(got.value) == packed and len(got.value) * 8 - got.pad_bits == len(v)
    elif kind == "float32":
        assert struct.pack(">f", float(got)) == struct.pack(">f", v)
    elif kind == "float64":
        assert struct.pack(">d", float(got)) == struct.pack(">d", v)
    elif kind == "utf8":
        # gurux returns the text, or its hex dump for non-ASCII text
        assert got == v or got == GXByteBuffer.hex(v.encode("utf-8"), True)
    elif kind == "datetime":
        t = got.value
        assert (t.year, t.month, t.day, t.hour, t.minute, t.second) == (v.year, v.month, v.day, v.hour, v.minute, v.second)
        assert t.microsecond == (0 if v.hundredths == 0xFF else v.hundredths * 10000)
        if v.deviation == -0x8000:
            assert t.utcoffset() is None
        else:
            assert t.utcoffset() == dt.timedelta(minutes=-v.deviation)
        assert got.status == v.status
        if v.weekday != 0xFF:
            assert got.dayOfWeek == v.weekday
    elif kind == "octets":
        assert bytes(got) == v
    else:
        assert got == v


@FAST
@given(_tree_st(cosem_ok=False))
def test_axdr_decodes_in_gurux(node):
    b = encode(node)
    buf = GXByteBuffer(b)
    info = _GXDataInfo()
    got = _GXCommon.getData(GXDLMSSettings(False, None), buf, info)
    assert info.complete and buf.position == len(b)
    _check_gurux(node, got)


def _check_cosem(node, got):
    kind, v = node
    if kind in ("array", "struct"):
        assert len(got) == len(v)
        for k, g in zip(v, got):
            _check_cosem(k, g)
    elif kind == "datetime":
        t, status = got
        assert (t.year, t.month, t.day, t.hour, t.minute, t.second) == (v.year, v.month, v.day, v.hour, v.minute, v.second)
        assert t.microsecond == (0 if v.hundredths == 0xFF else v.hundredths * 10000)
        # dlms-cosem treats deviation 0 like "not specified"
        if v.deviation in (0, -0x8000):
            assert t.utcoffset() is None
        else:
            assert t.utcoffset() == dt.timedelta(minutes=-v.deviation)
        assert status.to_bytes()[0] == v.status & 0x8F
    elif kind == "octets":
        assert bytes(got) == v
    else:
        assert got == v


@FAST
@given(_tree_st(cosem_ok=True))
def test_axdr_decodes_in_dlms_cosem(node):
    from dlms_cosem.dlms_data import DlmsDataParser
    parsed = DlmsDataParser().parse(encode(node))
    assert len(parsed) == 1
    _check_cosem(node, parsed[0].to_python())


def test_axdr_lengths_and_known_bytes():
    assert d.axdr_length(0x7F) == b"\x7f" and d.axdr_length(0x80) == b"\x81\x80"
    assert d.axdr_length(1182) == b"\x82\x04\x9e"
    assert d.scaler_unit(-1, 35) == bytes.fromhex("02020FFF1623")  # the HAN vector's V scaler_unit
    assert d.logical_name("1-0:1.8.0*255") == d.logical_name((1, 0, 1, 8, 0, 255)) == bytes.fromhex("0100010800FF")
    assert d.logical_name(0x0100010800FF) == bytes.fromhex("0100010800FF")
    assert d.axdr_date_time(d.DateTime(2019, 12, 16, 1, 7, 59, 40, 0xFF, -0x8000, 0xFF)) == \
        bytes.fromhex("19") + bytes.fromhex("07E30C1001073B28FF8000FF")
    with pytest.raises(ValueError):
        d.axdr_uint8(256)
    with pytest.raises(ValueError):
        d.DateTime(2020, 13 * 20)


@FAST
@given(datetime_st)
def test_datetime_round_trip(v):
    assert d.DateTime.from_bytes(v.to_bytes()) == v
    if v.hundredths != 0xFF:
        back = d.DateTime.from_datetime(v.to_datetime(), status=v.status, weekday=v.weekday != 0xFF)
        assert back.to_bytes()[:4] == v.to_bytes()[:4] and back.deviation == v.deviation


# ---------------------------------------------------------------------------------------------
# response builders vs gurux / dlms-cosem
# ---------------------------------------------------------------------------------------------

def _gurux_pdu_value(apdus: list[bytes]):
    c = GXDLMSClient(True, 16, 1, GxAuth.NONE, None, InterfaceType.PDU)
    c.negotiatedConformance = 0xFFFFFF
    reply = gx.GXReplyData()
    for a in apdus:
        c.getData(GXByteBuffer(a), reply)
    return reply


@FAST
@given(st.lists(st.tuples(datetime_st, st.integers(0, 255), st.integers(0, 2**32 - 1)), min_size=1, max_size=60),
       st.integers(8, 300), st.integers(1, 15))
def test_profile_buffer_in_blocks_decodes_in_gurux(rows, block_size, invoke_id):
    data = d.profile_buffer([(t, d.axdr_uint8(a), b) for t, a, b in rows])
    blocks = d.get_response_blocks(data, block_size, invoke_id=invoke_id)
    assert len(blocks) == math.ceil(len(data) / block_size)
    # gurux pulls further blocks itself; feed them one by one as a client loop would
    c = GXDLMSClient(True, 16, 1, GxAuth.NONE, None, InterfaceType.PDU)
    c.negotiatedConformance = 0xFFFFFF
    c.settings.invokeId = invoke_id  # gurux's setInvokeID sets another attribute than it reads
    reply = gx.GXReplyData()
    for k, blk in enumerate(blocks):
        c.getData(GXByteBuffer(blk), reply)
        if k < len(blocks) - 1:
            assert reply.isMoreData()
            nxt = bytes(c.receiverReady(reply))
            ours = d.get_request_next(k + 1, invoke_id=invoke_id)
            # gurux's PDU-interface GET-next leaves the C0 tag byte 00; the rest must agree
            assert nxt[1:] == ours[1:] and ours[0] == 0xC0
    assert not reply.isMoreData()
    value = reply.value
    assert len(value) == len(rows)
    for (t, a, b), row in zip(rows, value):
        assert bytes(row[0]) == t.to_bytes() and row[1] == a and row[2] == b


def test_get_response_error_and_with_list_in_dlms_cosem():
    from dlms_cosem.protocol.xdlms import get as cget
    r = cget.GetResponseFactory.from_bytes(d.get_response_error(d.DataAccessResult.OBJECT_UNDEFINED, invoke_id=3))
    assert r.invoke_id_and_priority.invoke_id == 3 and int(r.error) == 4
    r = cget.GetResponseFactory.from_bytes(d.get_response_normal(d.axdr_uint32(5009)))
    assert r.data == d.axdr_uint32(5009)
    blocks = d.get_response_blocks(d.axdr_octet_string(bytes(300)), 100)
    r = cget.GetResponseFactory.from_bytes(blocks[0])
    assert r.block_number == 1 and r.data == d.axdr_octet_string(bytes(300))[:100]
    r = cget.GetResponseFactory.from_bytes(blocks[-1])
    assert r.block_number == len(blocks)
    lst = d.get_response_with_list([d.axdr_uint16(7), d.DataAccessResult.READ_WRITE_DENIED])
    reply = _gurux_pdu_value([lst])
    assert list(reply.value)[0] == 7


@FAST
@given(st.integers(-6, 6), st.integers(0, 2**31 - 1), st.sampled_from([30, 32, 27, 35, 33, 44, 9]),
       st.sampled_from([d.DataType.UINT32, d.DataType.INT32, d.DataType.UINT64, d.DataType.FLOAT64]))
def test_register_attributes_decode_in_gurux(scaler, raw, unit, dtype):
    physical = raw * 10.0 ** scaler
    value, su = d.register_attributes(physical, scaler, unit, dtype)
    assert su == d.scaler_unit(scaler, unit) and value[0] == dtype
    reg = GXDLMSRegister("1.0.1.8.0.255")
    c = GXDLMSClient(True, 16, 1, GxAuth.NONE, None, InterfaceType.PDU)
    for attr, data in ((3, su), (2, value)):
        c.updateValue(reg, attr, _gurux_pdu_value([d.get_response_normal(data)]).value)
    assert int(reg.unit) == unit
    assert math.isclose(reg.value, physical, rel_tol=1e-9, abs_tol=1e-9 * 10.0 ** scaler)


def test_register_responses_decode_in_gurux():
    reg = GXDLMSRegister("1.0.1.8.0.255")
    c = GXDLMSClient(True, 16, 1, GxAuth.NONE, None, InterfaceType.PDU)
    reply = _gurux_pdu_value([d.get_response_normal(d.scaler_unit(-1, 30))])
    c.updateValue(reg, 3, reply.value)
    assert reg.scaler == 0.1 and int(reg.unit) == 30
    reply = _gurux_pdu_value([d.get_response_normal(d.capture_objects([(8, "0.0.1.0.0.255", 2, 0),
                                                                        (3, "1.0.1.8.0.255", 2, 0)]))])
    assert [(int(x[0]), bytes(x[1]), x[2], x[3]) for x in reply.value] == [
        (8, bytes([0, 0, 1, 0, 0, 255]), 2, 0), (3, bytes([1, 0, 1, 8, 0, 255]), 2, 0)]


# ---------------------------------------------------------------------------------------------
# ACSE round trips (and gurux parsing our builds)
# ---------------------------------------------------------------------------------------------

@FAST
@given(st.booleans(), st.sampled_from(list(d.Authentication)[:3]), st.binary(max_size=100), conf_st,
       st.integers(0, 0xFFFF))
def test_aarq_round_trip_and_dlms_cosem(ln, auth, pw, conf, pdu):
    apdu = d.aarq(logical_name=ln, authentication=auth, password=pw if auth else None, conformance=conf,
                  max_pdu_size=pdu)
    info = d.parse_aarq(apdu)
    assert (info.logical_name, info.authentication, info.conformance, info.max_pdu_size, info.dlms_version) == \
        (ln, auth, conf, pdu, 6)
    assert info.password == (pw if auth else None)
    from dlms_cosem.protocol.acse import ApplicationAssociationRequest
    if not ln:
        return  # dlms-cosem 25.1 refuses SN referencing
    theirs = ApplicationAssociationRequest.from_bytes(apdu)
    ir = theirs.user_information.content
    assert ir.client_max_receive_pdu_size == pdu and ir.proposed_dlms_version_number == 6
    if auth == d.Authentication.LOW:
        assert theirs.authentication_value == pw


@FAST
@given(st.sampled_from(list(d.AssociationResult)), st.sampled_from(list(d.SourceDiagnostic)), conf_st,
       st.integers(64, 0xFFFF), st.booleans(), st.sampled_from(["user", "provider"]))
def test_aare_round_trip(result, diag, conf, pdu, ln, source):
    apdu = d.aare(result, diag, logical_name=ln, conformance=conf, max_pdu_size=pdu, diagnostic_source=source)
    info = d.parse_aare(apdu)
    assert (info.result, info.diagnostic, info.diagnostic_source, info.conformance, info.max_pdu_size,
            info.logical_name) == (result, diag, source, conf, pdu, ln)
    assert info.vaa_name == (0x0007 if ln else 0xFA00)
    if result == 0:
        assert d.parse_aare(apdu, raise_on_reject=True).accepted
    else:
        with pytest.raises(d.AssociationError) as e:
            d.parse_aare(apdu, raise_on_reject=True)
        assert e.value.code == diag and e.value.result == result


@FAST
@given(st.sampled_from([1, 2]), st.sampled_from([d.SourceDiagnostic.AUTHENTICATION_FAILURE,
                                                 d.SourceDiagnostic.AUTHENTICATION_REQUIRED,
                                                 d.SourceDiagnostic.NO_REASON_GIVEN,
                                                 d.SourceDiagnostic.APPLICATION_CONTEXT_NAME_NOT_SUPPORTED]),
       conf_st, st.integers(64, 0xFFFF))
def test_aare_parsed_by_gurux(result, diag, conf, pdu):
    # accepted: gurux takes our conformance / PDU size
    c = GXDLMSClient(True, 16, 1)
    c.parseAareResponse(GXByteBuffer(d.aare(conformance=conf, max_pdu_size=pdu)))
    assert int(c.negotiatedConformance) == d.conformance_to_gurux(conf) and c.maxReceivePDUSize == pdu
    # rejected: gurux reports the same result and diagnostic
    apdu = d.aare(result, diag, conformance=conf, max_pdu_size=pdu)
    c = GXDLMSClient(True, 16, 1)
    with pytest.raises(gx.GXDLMSException) as e:
        c.parseAareResponse(GXByteBuffer(apdu))
    assert int(e.value.result) == result and int(e.value.diagnostic) == diag
    with pytest.raises(d.AssociationError) as ours:
        d.parse_aare(apdu, raise_on_reject=True)
    assert ours.value.code == diag
    if diag == d.SourceDiagnostic.AUTHENTICATION_FAILURE:
        assert "authentication-failure" in str(ours.value)


def test_aare_service_error_and_garbage():
    apdu = d.aare(d.AssociationResult.REJECTED_PERMANENT, d.SourceDiagnostic.NO_REASON_GIVEN, service_error=(6, 1))
    info = d.parse_aare(apdu)
    assert info.service_error == (6, 1) and info.conformance is None
    with pytest.raises(d.AssociationError):
        d.parse_aare(apdu, raise_on_reject=True)
    good = d.aare()
    for n in range(len(good)):
        with pytest.raises(FrameError):
            d.parse_aare(good[:n])
    with pytest.raises(FrameError):
        d.parse_aare(d.aarq())


def test_release_apdus():
    assert d.rlrq(0) == bytes.fromhex("6203800100")
    assert d.parse_rlre(d.rlre(0)) == 0 and d.parse_rlre(d.rlre(None)) is None
    from dlms_cosem.protocol.acse import ReleaseRequest, ReleaseResponse
    assert int(ReleaseRequest.from_bytes(d.rlrq(1)).reason) == 1
    assert int(ReleaseResponse.from_bytes(d.rlre(0)).reason) == 0


@FAST
@given(d.HdlcParameters and st.builds(d.HdlcParameters, st.integers(32, 2030), st.integers(32, 2030),
                                      st.integers(1, 7), st.integers(1, 7)), st.booleans())
def test_ua_round_trip_and_gurux(p, all_params):
    ua = d.ua_frame(d.hdlc_client_address(16), d.hdlc_server_address(1, 17), p, all_parameters=all_params)
    assert d.parse_ua(ua) == p
    info = d.parse_hdlc_frame(ua).info
    if info:
        assert _gurux_ua(info) == (p.max_info_tx, p.max_info_rx, p.window_tx, p.window_rx)
    assert d.HdlcParameters.decode(p.encode(all_parameters=True)) == p


# ---------------------------------------------------------------------------------------------
# xDLMS request round trips and dlms-cosem parsing
# ---------------------------------------------------------------------------------------------

access_st = st.one_of(
    st.none(),
    st.builds(d.entry_descriptor, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1),
              st.integers(0, 0xFFFF), st.integers(0, 0xFFFF)),
    st.builds(lambda a, b: d.range_descriptor(a, b), datetime_st, datetime_st))


@FAST
@given(st.one_of(st.sampled_from([1, 3, 4, 5, 7, 8, 15, 17, 20, 22, 70]), st.integers(0, 0xFFFF)), obis_st,
       st.integers(0, 255), access_st, st.integers(0, 15), st.booleans(), st.booleans())
def test_get_request_round_trip_and_dlms_cosem(class_id, obis, attr, access, iid, prio, confirmed):
    apdu = d.get_request(class_id, obis, attr, access=access, invoke_id=iid, high_priority=prio, confirmed=confirmed)
    r = d.parse_xdlms_request(apdu)
    assert (r.service, r.kind, r.invoke_id) == ("get", "normal", iid)
    assert r.iip == (0x80 if prio else 0) | (0x40 if confirmed else 0) | iid
    cls_, ln, a, sel, params = r.items[0]
    assert (cls_, ln, a) == (class_id, d.logical_name(obis), attr)
    assert (sel, params) == ((access.selector, access.parameters) if access else (None, None))
    from dlms_cosem.enumerations import CosemInterface
    if access is None and class_id in CosemInterface._value2member_map_:  # it parses no selectors
        from dlms_cosem.protocol.xdlms import get as cget
        theirs = cget.GetRequestFactory.from_bytes(apdu)
        assert theirs.cosem_attribute.interface == class_id and theirs.cosem_attribute.attribute == attr
        assert theirs.cosem_attribute.instance.to_bytes() == d.logical_name(obis)
        assert theirs.invoke_id_and_priority.invoke_id == iid


@FAST
@given(st.lists(st.tuples(st.integers(0, 0xFFFF), obis_st, st.integers(0, 255), access_st), min_size=1, max_size=5),
       st.integers(0, 2**32 - 1))
def test_list_next_set_action_round_trip(items, block):
    r = d.parse_xdlms_request(d.get_request_with_list(items))
    assert r.kind == "with-list" and len(r.items) == len(items)
    for (c, o, a, acc), got in zip(items, r.items):
        assert got[:3] == (c, d.logical_name(o), a)
        assert got[3:] == ((acc.selector, acc.parameters) if acc else (None, None))
    r = d.parse_xdlms_request(d.get_request_next(block, invoke_id=5))
    assert (r.kind, r.block_number, r.invoke_id) == ("next", block, 5)
    c, o, a, _ = items[0]
    data = d.axdr_structure([d.axdr_uint32(block), d.axdr_visible_string("x")])
    r = d.parse_xdlms_request(d.set_request(c, o, a, data))
    assert (r.service, r.items[0][:3], r.data) == ("set", (c, d.logical_name(o), a), data)
    r = d.parse_xdlms_request(d.action_request(c, o, a, data))
    assert (r.service, r.items[0][:3], r.data) == ("action", (c, d.logical_name(o), a), data)
    r = d.parse_xdlms_request(d.action_request(c, o, a))
    assert r.data is None


def test_hdlc_parameter_errors():
    with pytest.raises(FrameError):
        d.HdlcParameters.decode(b"\x81\x80\x03\x09\x01\x01")
    with pytest.raises(TruncatedFrameError):
        d.HdlcParameters.decode(b"\x81\x80\x05\x05\x02\x01")
    with pytest.raises(FrameError):
        d.HdlcParameters.decode(b"\x82\x80\x00")
    assert d.HdlcParameters.decode(b"") == d.HdlcParameters()
    assert d.HdlcParameters().encode() == b""


# ---------------------------------------------------------------------------------------------
# the small parsers on hostile input: a FrameError subclass or a result, nothing else
# ---------------------------------------------------------------------------------------------

def _valid_samples() -> list[tuple[str, bytes]]:
    link = d.HdlcLink(32, 1, 17, 4)
    return [
        ("hdlc", link.snrm()), ("hdlc", link.send_apdu(d.aarq(authentication=1, password="12345678"))[0]),
        ("hdlc", d.ua_frame(b"\x21", b"\x02\x23", d.HdlcParameters(256, 512, 3, 4))),
        ("aare", d.aare()), ("aare", d.aare(1, 13, service_error=(6, 0))), ("aarq", d.aarq(authentication=1, password="x")),
        ("req", d.get_request(7, "1.0.99.1.0.255", 2, access=d.range_descriptor(d.DateTime(), d.DateTime()))),
        ("req", d.get_request_with_list([(3, "1.0.1.8.0.255", 2), (3, "1.0.2.8.0.255", 3)])),
        ("req", d.set_clock_request(d.DateTime(2024, 1, 1))), ("req", d.clock_action_request(6, shift_seconds=5)),
        ("params", d.HdlcParameters(300, 64, 2, 7).encode()), ("wrapper", d.wrapper_frame(d.aarq(), 16, 1)),
    ]


_PARSERS = {
    "hdlc": d.parse_hdlc_frame, "aare": d.parse_aare, "aarq": d.parse_aarq, "req": d.parse_xdlms_request,
    "params": d.HdlcParameters.decode, "wrapper": d.parse_wrapper,
}


@FAST
@given(st.sampled_from(range(len(_valid_samples()))), st.data())
def test_parsers_on_mutated_input(k, data):
    kind, raw = _valid_samples()[k]
    buf = bytearray(raw)
    op = data.draw(st.sampled_from(["cut", "flip", "insert", "random"]))
    if op == "cut":
        buf = buf[:data.draw(st.integers(0, len(buf)))]
    elif op == "flip":
        for _ in range(data.draw(st.integers(1, 4))):
            i = data.draw(st.integers(0, len(buf) - 1))
            buf[i] ^= 1 << data.draw(st.integers(0, 7))
    elif op == "insert":
        i = data.draw(st.integers(0, len(buf)))
        buf[i:i] = data.draw(st.binary(min_size=1, max_size=8))
    else:
        buf = bytearray(data.draw(st.binary(max_size=80)))
    try:
        _PARSERS[kind](bytes(buf))
    except FrameError:
        pass


def test_dlms_cosem_parses_our_i_frames():
    from dlms_cosem.hdlc.frames import InformationFrame
    # dlms-cosem parses I-frames the way a client receives them (server -> client)
    link = d.HdlcLink(16, 1, 17, role="server", params=d.HdlcParameters(48, 128))
    apdu = d.get_response_normal(d.profile_buffer([(d.DateTime(2024, 1, 1, 1, 0, 0, 0, 0, -60, 0), 1, 2)] * 3))
    frames = link.send_apdu(apdu)
    assert len(frames) > 1
    payload = b""
    for k, raw in enumerate(frames):
        f = InformationFrame.from_bytes(raw)
        assert (f.send_sequence_number, f.receive_sequence_number, f.segmented) == (k, 0, k < len(frames) - 1)
        payload += f.payload
    assert payload == d.LLC_RESPONSE + apdu
