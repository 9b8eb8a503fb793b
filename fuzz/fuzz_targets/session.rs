//! Drives the whole sans-IO session machine (wire + session + algorithms) with
//! arbitrary bytes on several connections, interleaved with TLS completions,
//! timer expiries and closes. Nothing may panic, `handle_input` may never claim
//! more bytes than it was given, and every queued frame must be a well-formed
//! server message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qnetd::session::{CertNames, Event, Instance};
use qnetd::settings::{CoreSettings, TlsMode};
use qnetd::wire::{self, MsgType};

fuzz_target!(|data: &[u8]| {
    let Some((&cfg, mut rest)) = data.split_first() else { return };
    let settings = CoreSettings {
        tls: match cfg & 3 {
            0 => TlsMode::Off,
            1 => TlsMode::On,
            _ => TlsMode::Required,
        },
        client_cert_required: cfg & 4 != 0,
        dpd_enabled: cfg & 8 != 0,
        max_client_send_buffers: if cfg & 16 != 0 { 2 } else { 32 },
        max_client_receive_size: if cfg & 32 != 0 { 64 } else { 32768 },
        keep_active_partition_tie_breaker: cfg & 64 != 0,
        ..CoreSettings::default()
    };
    let mut inst = Instance::new(settings);
    let mut now = 0u64;
    let mut conns = Vec::new();
    for _ in 0..4 {
        if let Some(c) = inst.accept(now, "127.0.0.1:1".into()) {
            conns.push(c);
        }
    }
    // Each op: [selector, len, bytes...].
    while rest.len() >= 2 {
        let (op, len) = (rest[0], rest[1] as usize);
        rest = &rest[2..];
        let take = len.min(rest.len());
        let (chunk, tail) = rest.split_at(take);
        rest = tail;
        let c = conns[op as usize % conns.len().max(1)..].first().copied().unwrap_or(0);
        match op >> 5 {
            0..=4 => {
                let used = inst.handle_input(now, c, chunk);
                assert!(used <= chunk.len());
            }
            5 => {
                let names = (len % 3 != 0).then(|| CertNames {
                    dns_names: vec![],
                    common_names: vec![String::from_utf8_lossy(chunk).into_owned()],
                });
                inst.tls_established(now, c, names);
            }
            6 => {
                now += (len as u64) * 997;
                inst.handle_timeout(now);
            }
            _ => inst.handle_close(now, c),
        }
        while let Some(ev) = inst.poll_event() {
            if let Event::Transmit(t) = ev {
                while let Some(frame) = inst.poll_transmit(t) {
                    let ty = u16::from_be_bytes([frame[0], frame[1]]);
                    let len = u32::from_be_bytes([frame[2], frame[3], frame[4], frame[5]]) as usize;
                    assert_eq!(frame.len(), wire::HEADER_LEN + len);
                    let ty = MsgType::from_u16(ty).expect("server sends known types");
                    if ty != MsgType::EchoReply {
                        wire::decode(ty, &frame[wire::HEADER_LEN..]).expect("server frames decode");
                    }
                }
            }
        }
        let _ = inst.poll_timeout();
    }
    inst.shutdown(now);
});
