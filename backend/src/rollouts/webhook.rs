//! The generic webhook provider: a signed JSON body POSTed to a receiver (Debian's `webhook`
//! tool, a CI's trigger endpoint). A 2xx other than 202 means the deploy ran and succeeded
//! (a receiver that runs the deploy while the request waits); 202 means it was accepted and
//! will be reported to the rollout's callback URL; any other answer means it failed.
//!
//! The body is a `DeployWebhookBody`; `X-Vigil-Signature: sha256=<hex>` is the lowercase hex of
//! HMAC-SHA256 keyed with the integration's secret `signing_key` over the raw body (which holds
//! `sent_at`), so that `webhook`'s `payload-hmac-sha256` rule checks it as it stands. A
//! callback is signed the same way over its own raw body. Parameters: `url`, `headers` (an
//! object of strings sent along, such as a receiver's token header).

use serde_json::{Map, Value};
use vigil_proto::rollouts::DeployWebhookBody;

use super::provider::{
    Credential, Provider, ProviderError, RunHandle, RunOutcome, RunStatus, TriggerRequest, excerpt, url_param,
};
use crate::alerts::channels::{hmac_sha256, lowercase_hex};

pub const SIGNATURE_HEADER: &str = "X-Vigil-Signature";
const ACCEPTED: u16 = 202;

pub struct Webhook {
    url: String,
    headers: Vec<(String, String)>,
    signing_key: Option<String>,
    http: reqwest::Client,
}

impl Webhook {
    pub fn new(
        params: &Map<String, Value>,
        credential: Option<Credential>,
        http: reqwest::Client,
    ) -> Result<Self, ProviderError> {
        let headers = match params.get("headers") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(headers)) => headers
                .iter()
                .map(|(name, value)| match value.as_str() {
                    Some(value) if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_ok() => {
                        Ok((name.clone(), value.to_owned()))
                    }
                    _ => Err(ProviderError::Params(format!("params.headers.{name} must be a header with a string"))),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(ProviderError::Params("params.headers must be an object of strings".to_owned())),
        };
        let signing_key = credential.and_then(|credential| credential.secrets.get("signing_key").cloned());
        Ok(Self { url: url_param(params, "url")?, headers, signing_key, http })
    }
}

/// `sha256=<hex>` of the body under `key`.
pub fn signature(key: &str, body: &[u8]) -> String {
    format!("sha256={}", lowercase_hex(&hmac_sha256(key.as_bytes(), &[body])))
}

/// Whether `header` is the signature of `body` under `key`, compared in constant time.
pub fn verify(key: &str, body: &[u8], header: &str) -> bool {
    let expected = signature(key, body);
    let (expected, given) = (expected.as_bytes(), header.trim().as_bytes());
    expected.len() == given.len() && expected.iter().zip(given).fold(0u8, |differ, (a, b)| differ | (a ^ b)) == 0
}

fn unix_seconds_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[async_trait::async_trait]
impl Provider for Webhook {
    async fn trigger(&self, request: &TriggerRequest<'_>) -> Result<RunHandle, ProviderError> {
        let body = DeployWebhookBody {
            rollout_id: request.rollout_id,
            service: request.service.to_owned(),
            environment: request.environment.to_owned(),
            version: request.version.to_owned(),
            kind: request.kind,
            callback_url: request.callback_url.to_owned(),
            sent_at: unix_seconds_now(),
        };
        // Strings and numbers: serializing cannot fail.
        let body = serde_json::to_vec(&body).expect("a webhook body serializes");
        let mut post = self.http.post(&self.url).header(reqwest::header::CONTENT_TYPE, "application/json");
        for (name, value) in &self.headers {
            post = post.header(name.as_str(), value.as_str());
        }
        if let Some(key) = &self.signing_key {
            post = post.header(SIGNATURE_HEADER, signature(key, &body));
        }
        let what = "the deploy webhook".to_owned();
        let response =
            post.body(body).send().await.map_err(|source| ProviderError::Request { what: what.clone(), source })?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|source| ProviderError::Request { what, source })?;
        let id = format!("webhook-{}", request.rollout_id);
        let finished = match status {
            ACCEPTED => None,
            200..=299 => Some(RunOutcome { status: RunStatus::Succeeded, detail: excerpt(&text), url: None }),
            _ => Some(RunOutcome {
                status: RunStatus::Failed,
                detail: format!("the receiver answered {status}: {}", excerpt(&text)),
                url: None,
            }),
        };
        Ok(RunHandle { id, url: None, finished })
    }

    /// An accepted run ends by its callback; there is nothing to ask meanwhile.
    async fn poll(&self, _run_id: &str) -> Result<RunOutcome, ProviderError> {
        Ok(RunOutcome { status: RunStatus::Running, detail: "waiting for the callback".to_owned(), url: None })
    }

    async fn cancel(&self, _run_id: &str, _reason: &str) -> Result<(), ProviderError> {
        Err(ProviderError::Unsupported("a webhook run cannot be cancelled from Vigil; stop it in the CI"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_its_body_and_key() {
        let body = br#"{"rollout_id":1,"status":"succeeded"}"#;
        let header = signature("key", body);
        assert!(header.starts_with("sha256=") && header.len() == 7 + 64);
        assert!(verify("key", body, &header));
        assert!(!verify("other key", body, &header));
        assert!(!verify("key", br#"{"rollout_id":2,"status":"succeeded"}"#, &header));
        assert!(!verify("key", body, "sha256=00"));
    }
}
