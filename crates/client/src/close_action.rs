//! What a client does after each close code: the shared table of docs/CLIENTS.md, which
//! the TypeScript and Python clients follow too.

use roomcast_protocol::close::CloseCode;

/// What the client does after the connection closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseAction {
    /// Reconnect with backoff and recover every room.
    Reconnect,
    /// Reconnect only if the token source yields a token different from the refused one.
    Reauthenticate,
    /// Never reconnect: the session ends.
    Stop,
}

/// Classifies a close code (`None`: the TCP connection ended without a close frame).
/// Unknown codes are transient.
pub fn action_for(code: Option<u16>) -> CloseAction {
    let Some(code) = code.and_then(CloseCode::from_u16) else {
        return CloseAction::Reconnect;
    };
    match code {
        CloseCode::Unauthorized
        | CloseCode::InvalidToken
        | CloseCode::TokenExpired
        | CloseCode::AuthTimeout
        | CloseCode::SessionExpired => CloseAction::Reauthenticate,
        // 1003/1007: the client sent binary or invalid UTF-8, a bug that a retry repeats.
        CloseCode::UnsupportedData
        | CloseCode::InvalidPayload
        | CloseCode::SessionSuperseded
        | CloseCode::TooManyConnections
        | CloseCode::InvalidSubscription => CloseAction::Stop,
        _ => CloseAction::Reconnect,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_table() {
        for code in [4011, 4022, 4031, 1003, 1007] {
            assert_eq!(action_for(Some(code)), CloseAction::Stop, "{code}");
        }
        for code in [4001, 4002, 4003, 4004, 4012] {
            assert_eq!(
                action_for(Some(code)),
                CloseAction::Reauthenticate,
                "{code}"
            );
        }
        for code in [
            1000, 1001, 1002, 1008, 1009, 1011, 4021, 4032, 4091, 4092, 4999,
        ] {
            assert_eq!(action_for(Some(code)), CloseAction::Reconnect, "{code}");
        }
        assert_eq!(action_for(None), CloseAction::Reconnect);
    }
}
