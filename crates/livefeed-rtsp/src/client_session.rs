//! The client side of an RTSP session, without I/O: builds requests (CSeq, Session,
//! User-Agent) and checks responses (matching CSeq, success status, session id).
//!
//! Contract: send each request returned by a builder method, then pass the response to
//! [`ClientSession::check_response`] before building the next request. When that returns a
//! request, send it instead (the same request again with credentials, after a 401 the URL's
//! userinfo can answer) and check its response the same way.

use rtsp_types::headers;
use rtsp_types::{HeaderName, Method, Request, Response, StatusCode, Url, Version};

use crate::client_auth::{take_credentials, Authorizer, Credentials};
use crate::transport::{self, LowerTransport};

/// Why the server's answer cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server refused the request.
    #[error("{method} {url} refused: {status} {reason}")]
    Refused {
        /// Request method.
        method: String,
        /// Request URL.
        url: String,
        /// Status code.
        status: u16,
        /// Reason phrase sent by the server.
        reason: String,
    },
    /// A response whose CSeq does not match the request.
    #[error("response CSeq {got:?} does not match request CSeq {expected}")]
    CSeqMismatch {
        /// The request's CSeq.
        expected: u32,
        /// What the response carried.
        got: Option<String>,
    },
    /// A response arrived with no request outstanding.
    #[error("unsolicited response")]
    Unsolicited,
    /// The server's answer lacks something the session needs.
    #[error("{0}")]
    Protocol(String),
}

/// The request awaiting its response, kept whole so it can be sent again with credentials.
#[derive(Clone)]
struct Pending {
    cseq: u32,
    method: Method,
    url: Url,
    extra: Vec<(HeaderName, String)>,
    body: Vec<u8>,
    /// Whether this request was already sent with credentials.
    authorized: bool,
}

/// Client session state.
pub struct ClientSession {
    url: Url,
    cseq: u32,
    session_id: Option<String>,
    pending: Option<Pending>,
    credentials: Option<Credentials>,
    authorizer: Option<Authorizer>,
}

impl ClientSession {
    /// A session for the stream at `url` (`rtsp://[user:pass@]host:port/path`); credentials
    /// in the URL answer the server's challenge and never appear in requests.
    pub fn new(mut url: Url) -> Self {
        let credentials = take_credentials(&mut url);
        ClientSession {
            url,
            cseq: 0,
            session_id: None,
            pending: None,
            credentials,
            authorizer: None,
        }
    }

    /// The stream URL.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The session id the server gave at SETUP.
    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }

    fn request(
        &mut self,
        method: Method,
        url: Url,
        extra: &[(HeaderName, String)],
        body: Vec<u8>,
    ) -> Request<Vec<u8>> {
        let pending = Pending {
            cseq: 0,
            method,
            url,
            extra: extra.to_vec(),
            body,
            authorized: self.authorizer.is_some(),
        };
        self.send(pending)
    }

    /// Numbers `pending`, builds it (with credentials once the server asked for them) and
    /// keeps it as the request awaiting its response.
    fn send(&mut self, mut pending: Pending) -> Request<Vec<u8>> {
        self.cseq = self.cseq.wrapping_add(1);
        pending.cseq = self.cseq;
        let mut builder = Request::builder(pending.method.clone(), Version::V1_0)
            .request_uri(pending.url.clone())
            .header(headers::CSEQ, self.cseq.to_string())
            .header(headers::USER_AGENT, crate::PRODUCT);
        if let Some(id) = &self.session_id {
            builder = builder.header(headers::SESSION, id.clone());
        }
        if let Some(authorizer) = &mut self.authorizer {
            let method: &str = (&pending.method).into();
            let value = authorizer.authorization(method, pending.url.as_str());
            builder = builder.header(headers::AUTHORIZATION, value);
        }
        for (name, value) in &pending.extra {
            builder = builder.header(name.clone(), value.clone());
        }
        let request = builder.build(pending.body.clone());
        self.pending = Some(pending);
        request
    }

    /// OPTIONS.
    pub fn options(&mut self) -> Request<Vec<u8>> {
        self.request(Method::Options, self.url.clone(), &[], Vec::new())
    }

    /// DESCRIBE, asking for SDP.
    pub fn describe(&mut self) -> Request<Vec<u8>> {
        let accept = [(headers::ACCEPT, "application/sdp".to_string())];
        self.request(Method::Describe, self.url.clone(), &accept, Vec::new())
    }

    /// ANNOUNCE with an SDP body.
    pub fn announce(&mut self, sdp: String) -> Request<Vec<u8>> {
        let ct = [(headers::CONTENT_TYPE, "application/sdp".to_string())];
        self.request(Method::Announce, self.url.clone(), &ct, sdp.into_bytes())
    }

    /// SETUP of the track at `track_url`.
    pub fn setup(
        &mut self,
        track_url: Url,
        lower: &LowerTransport,
        record: bool,
    ) -> Request<Vec<u8>> {
        let t = [(headers::TRANSPORT, transport::request_header(lower, record))];
        self.request(Method::Setup, track_url, &t, Vec::new())
    }

    /// PLAY from now.
    pub fn play(&mut self) -> Request<Vec<u8>> {
        let range = [(headers::RANGE, "npt=0.000-".to_string())];
        self.request(Method::Play, self.url.clone(), &range, Vec::new())
    }

    /// RECORD.
    pub fn record(&mut self) -> Request<Vec<u8>> {
        self.request(Method::Record, self.url.clone(), &[], Vec::new())
    }

    /// GET_PARAMETER without body: a keep-alive.
    pub fn keepalive(&mut self) -> Request<Vec<u8>> {
        self.request(Method::GetParameter, self.url.clone(), &[], Vec::new())
    }

    /// TEARDOWN.
    pub fn teardown(&mut self) -> Request<Vec<u8>> {
        self.request(Method::Teardown, self.url.clone(), &[], Vec::new())
    }

    /// Checks the response to the outstanding request; remembers the session id from SETUP.
    pub fn check_response(
        &mut self,
        resp: &Response<Vec<u8>>,
    ) -> Result<Option<Request<Vec<u8>>>, ClientError> {
        let pending = self.pending.take().ok_or(ClientError::Unsolicited)?;
        let cseq = pending.cseq;
        let got = resp
            .header(&headers::CSEQ)
            .map(|v| v.as_str().trim().to_string());
        if got.as_deref() != Some(cseq.to_string().as_str()) {
            return Err(ClientError::CSeqMismatch {
                expected: cseq,
                got,
            });
        }
        if resp.status() == StatusCode::Unauthorized && !pending.authorized {
            if let Some(retry) = self.answer_challenge(resp, pending.clone()) {
                return Ok(Some(retry));
            }
        }
        let (method, url) = (pending.method, pending.url);
        if !is_success(resp.status()) {
            let name: &str = (&method).into();
            return Err(ClientError::Refused {
                method: name.to_string(),
                url: url.to_string(),
                status: resp.status().into(),
                reason: resp.reason_phrase().to_string(),
            });
        }
        if method == Method::Setup {
            let session = resp
                .typed_header::<headers::Session>()
                .ok()
                .flatten()
                .ok_or_else(|| ClientError::Protocol("SETUP response without Session".into()))?;
            self.session_id = Some(session.0);
        }
        Ok(None)
    }

    /// The request `pending` again with credentials answering `resp`'s challenge, if the URL
    /// had credentials and the challenge is one livefeed can answer.
    fn answer_challenge(
        &mut self,
        resp: &Response<Vec<u8>>,
        mut pending: Pending,
    ) -> Option<Request<Vec<u8>>> {
        let credentials = self.credentials.clone()?;
        let challenges = resp
            .headers()
            .filter(|(name, _)| **name == headers::WWW_AUTHENTICATE)
            .map(|(_, value)| value.as_str());
        self.authorizer = Some(Authorizer::from_challenges(credentials, challenges)?);
        pending.authorized = true;
        Some(self.send(pending))
    }
}

fn is_success(status: StatusCode) -> bool {
    let code: u16 = status.into();
    (200..300).contains(&code)
}

/// The URL of a track: its `a=control` resolved against Content-Base (or the stream URL).
pub fn track_url(
    stream: &Url,
    content_base: Option<&str>,
    control: Option<&str>,
) -> Result<Url, ClientError> {
    let base_text = content_base
        .map(str::to_string)
        .unwrap_or_else(|| format!("{}/", stream.as_str().trim_end_matches('/')));
    let base = Url::parse(&base_text)
        .map_err(|e| ClientError::Protocol(format!("bad Content-Base {base_text:?}: {e}")))?;
    match control {
        None | Some("*") | Some("") => Ok(stream.clone()),
        Some(c) => base
            .join(c)
            .map_err(|e| ClientError::Protocol(format!("bad track control {c:?}: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(cseq: &str, status: StatusCode, extra: &[(HeaderName, &str)]) -> Response<Vec<u8>> {
        let mut b = Response::builder(Version::V1_0, status).header(headers::CSEQ, cseq);
        for (n, v) in extra {
            b = b.header(n.clone(), *v);
        }
        b.build(Vec::new())
    }

    #[test]
    fn setup_response_gives_the_session_id_used_afterwards() {
        let mut c = ClientSession::new(Url::parse("rtsp://127.0.0.1:8554/live").expect("url"));
        let lower = LowerTransport::Tcp {
            rtp_channel: 0,
            rtcp_channel: 1,
        };
        let req = c.setup(c.url().clone(), &lower, false);
        assert_eq!(req.header(&headers::CSEQ).map(|v| v.as_str()), Some("1"));
        c.check_response(&response(
            "1",
            StatusCode::Ok,
            &[(headers::SESSION, "12345678;timeout=60")],
        ))
        .expect("accepted");
        assert_eq!(c.session_id(), Some("12345678"));
        let play = c.play();
        assert_eq!(
            play.header(&headers::SESSION).map(|v| v.as_str()),
            Some("12345678")
        );
        assert_eq!(play.header(&headers::CSEQ).map(|v| v.as_str()), Some("2"));
    }

    #[test]
    fn refusals_and_mismatches_are_errors() {
        let mut c = ClientSession::new(Url::parse("rtsp://h/live").expect("url"));
        let _ = c.describe();
        let err = c
            .check_response(&response("1", StatusCode::NotFound, &[]))
            .expect_err("404 is an error");
        assert!(err.to_string().contains("404"), "{err}");
        let _ = c.options();
        assert!(matches!(
            c.check_response(&response("7", StatusCode::Ok, &[])),
            Err(ClientError::CSeqMismatch { expected: 2, .. })
        ));
        assert!(matches!(
            c.check_response(&response("2", StatusCode::Ok, &[])),
            Err(ClientError::Unsolicited)
        ));
    }

    #[test]
    fn track_urls_resolve_relative_and_absolute_controls() {
        let stream = Url::parse("rtsp://h:8554/cam/1").expect("url");
        let rel = track_url(&stream, Some("rtsp://h:8554/cam/1/"), Some("trackID=0")).expect("ok");
        assert_eq!(rel.as_str(), "rtsp://h:8554/cam/1/trackID=0");
        let no_base = track_url(&stream, None, Some("streamid=0")).expect("ok");
        assert_eq!(no_base.as_str(), "rtsp://h:8554/cam/1/streamid=0");
        let abs = track_url(&stream, None, Some("rtsp://other:1/x")).expect("ok");
        assert_eq!(abs.as_str(), "rtsp://other:1/x");
        assert_eq!(track_url(&stream, None, Some("*")).expect("ok"), stream);
    }
}
