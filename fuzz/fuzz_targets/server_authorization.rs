//! Fuzzes what the server reads from a client's `Authorization` header (Basic and Digest),
//! and its check against stored secrets and the server's nonces. No panic on any input.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rtsp_core::server_auth::{self, NonceKey, Secret};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let key = NonceKey::new([3; 32]);
    let users = [
        ("user", Secret::Plain("pass".into())),
        (
            "hashed",
            Secret::Sha256(server_auth::password_sha256(
                "hashed",
                server_auth::REALM,
                "pw",
            )),
        ),
    ];
    let secret = |name: &str| users.iter().find(|(n, _)| *n == name).map(|(_, s)| s);
    if let Ok(parsed) = server_auth::parse_authorization(text) {
        let _ = format!("{parsed:?}");
        if let server_auth::Authorization::Digest(d) = &parsed {
            let _ = key.check(&d.nonce, 1_700_000_000, server_auth::NONCE_LIFETIME);
        }
    }
    let _ = server_auth::verify(text, "DESCRIBE", secret, &key, 1_700_000_000);
});
