//! Who may call the server: bearer tokens, and the Basic handshake that
//! trades a token (sent as the password) for a bearer header.
//!
//! Every call passes [`Auth::check`] (a tonic interceptor) before the
//! service sees it. Tokens are compared through their SHA-256 digests in
//! constant time, so timing says nothing about how much of a guess matched.

use std::path::Path;

use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tonic::metadata::MetadataMap;
use tonic::{Request, Status};

use crate::error::{Error, Result};

/// Shorter tokens are refused: they can be guessed.
pub const MIN_TOKEN_LEN: usize = 16;

/// How clients prove who they are.
#[derive(Clone)]
pub enum Auth {
    /// Any of these tokens (as `Bearer <token>`, or as the password of
    /// `Basic` credentials).
    Tokens(Tokens),
    /// No authentication: [`crate::serve::run`] allows it only on a
    /// loopback address.
    Disabled,
}

/// The accepted tokens, kept as digests.
#[derive(Clone)]
pub struct Tokens {
    digests: Vec<[u8; 32]>,
}

impl Tokens {
    /// Accepts each of `tokens` (at least one, each at least
    /// [`MIN_TOKEN_LEN`] characters).
    pub fn new<S: AsRef<str>>(tokens: impl IntoIterator<Item = S>) -> Result<Self> {
        let mut digests = Vec::new();
        for t in tokens {
            let t = t.as_ref().trim();
            if t.len() < MIN_TOKEN_LEN {
                return Err(Error::InvalidArgument(format!(
                    "a token must be at least {MIN_TOKEN_LEN} characters long (for example from `openssl rand -hex 32`)"
                )));
            }
            digests.push(digest(t));
        }
        if digests.is_empty() {
            return Err(Error::InvalidArgument("no token given".into()));
        }
        Ok(Tokens { digests })
    }

    /// Tokens from a file, one per line (blank lines and `#` comments
    /// skipped).
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        Self::new(lines).map_err(|e| match e {
            Error::InvalidArgument(m) => Error::InvalidArgument(format!("{}: {m}", path.display())),
            e => e,
        })
    }

    /// True when `candidate` is one of the tokens. Looks at every token,
    /// whatever matches, in constant time for each.
    pub fn accepts(&self, candidate: &str) -> bool {
        let d = digest(candidate);
        self.digests
            .iter()
            .fold(subtle::Choice::from(0), |any, t| any | t[..].ct_eq(&d[..]))
            .into()
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The credential of a request: the token it presents.
pub(super) fn presented_token(metadata: &MetadataMap) -> std::result::Result<String, Status> {
    let header = metadata.get("authorization").ok_or_else(|| {
        Status::unauthenticated(
            "no authorization header: send 'authorization: Bearer <token>', or Basic credentials \
             with the token as password to the handshake",
        )
    })?;
    let value = header
        .to_str()
        .map_err(|_| Status::unauthenticated("the authorization header is not text"))?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if scheme.eq_ignore_ascii_case("bearer") {
        Ok(rest.trim().to_string())
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .map_err(|_| Status::unauthenticated("Basic credentials are not base64"))?;
        let text = String::from_utf8(decoded)
            .map_err(|_| Status::unauthenticated("Basic credentials are not UTF-8"))?;
        let (_user, password) = text
            .split_once(':')
            .ok_or_else(|| Status::unauthenticated("Basic credentials must be user:password"))?;
        Ok(password.to_string())
    } else {
        Err(Status::unauthenticated(format!(
            "unsupported authorization scheme '{scheme}' (use Bearer, or Basic for the handshake)"
        )))
    }
}

impl Auth {
    /// The interceptor: lets a request through when it carries an
    /// accepted token.
    #[allow(clippy::result_large_err)] // tonic's interceptor signature
    pub fn check(&self, request: Request<()>) -> std::result::Result<Request<()>, Status> {
        match self {
            Auth::Disabled => Ok(request),
            Auth::Tokens(tokens) => {
                let token = presented_token(request.metadata())?;
                if tokens.accepts(&token) {
                    Ok(request)
                } else {
                    Err(Status::unauthenticated(
                        "the token is not accepted by this server",
                    ))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef-token";

    fn request(header: &str) -> Request<()> {
        let mut r = Request::new(());
        r.metadata_mut()
            .insert("authorization", header.parse().unwrap());
        r
    }

    #[test]
    fn bearer_and_basic_with_the_token_pass_others_are_refused() {
        let auth = Auth::Tokens(Tokens::new([TOKEN, "another-token-0123456"]).unwrap());
        assert!(auth.check(request(&format!("Bearer {TOKEN}"))).is_ok());
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("alice:{TOKEN}"));
        assert!(auth.check(request(&format!("Basic {basic}"))).is_ok());
        for bad in [
            "Bearer 0123456789abcdef-tokeX".to_string(),
            "Bearer ".to_string(),
            format!("Token {TOKEN}"),
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("alice:wrong")
            ),
        ] {
            let status = auth.check(request(&bad)).unwrap_err();
            assert_eq!(status.code(), tonic::Code::Unauthenticated, "{bad}");
        }
        let missing = auth.check(Request::new(())).unwrap_err();
        assert!(
            missing.message().contains("Bearer"),
            "{}",
            missing.message()
        );
    }

    #[test]
    fn short_tokens_and_empty_files_are_refused() {
        assert!(Tokens::new(["short"]).is_err());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens.txt");
        std::fs::write(&file, "# none yet\n\n").unwrap();
        let err = Tokens::from_file(&file).err().unwrap();
        assert!(err.to_string().contains("no token"), "{err}");
        std::fs::write(&file, format!("# ci\n{TOKEN}\n")).unwrap();
        assert!(Tokens::from_file(&file).unwrap().accepts(TOKEN));
    }
}
