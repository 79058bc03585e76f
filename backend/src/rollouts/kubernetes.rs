//! A Kubernetes Deployment through the API server: the image of one container set to the
//! version by a strategic merge patch, the rollout then followed as `kubectl rollout status`
//! follows it; paused on abort (`kubectl rollout pause`).
//!
//! Parameters: `api_server` (`https://…:6443`), `namespace`, `deployment`, `container`,
//! `image_repository` (`registry.example.com/shop`: the image becomes
//! `<image_repository>:<version>`, or `<image_repository>@<version>` for a `sha256:` digest),
//! `ca_cert` (the PEM of the API server's CA, also taken from the integration's setting
//! `ca_cert`) and `insecure_skip_tls_verify` (`false`). With either, the provider uses a
//! client of its own (same timeouts, no redirects) that trusts that CA, or any certificate,
//! instead of the shared one. Credential: an integration of kind `kubernetes` with the secret
//! `token` (a service account's token allowed to `get` and `patch` the deployment), sent as
//! `Authorization: Bearer`.
//!
//! The patch sets the container's image, `spec.paused: false` (a deploy resumes a deployment
//! an abort paused), and the annotations `kubernetes.io/change-cause` and
//! `vigil.dev/rollout` on the deployment. The container is checked first: a strategic merge
//! with a name the pod template lacks would add a container. The run id is
//! `<generation>:<image>`: done when `status.observedGeneration` reached the patch's
//! generation and all replicas are updated and available and none old remain; failed when
//! the `Progressing` condition says `ProgressDeadlineExceeded`, or when someone changed the
//! container's image since.
//!
//! A rollback restores the whole pod template the version ran with, as `kubectl rollout undo`
//! does: of the deployment's ReplicaSets (listed by its selector, kept when their owner is the
//! deployment's `uid`), the newest (`deployment.kubernetes.io/revision`) whose container ran
//! `<image_repository>:<version>` gives its template, without the `pod-template-hash` label,
//! to a JSON patch that tests the deployment's generation first (so a change made meanwhile
//! fails it rather than being undone blindly). When no ReplicaSet is left for the version
//! (`revisionHistoryLimit`), the rollback sets the image as a deploy does.

use std::time::Duration;

use serde_json::{Map, Value, json};
use vigil_proto::rollouts::RolloutKind;

use super::provider::{
    Credential, Provider, ProviderError, RunHandle, RunOutcome, RunStatus, TriggerRequest, excerpt, json_answer,
    string_param, url_param,
};

const WHAT: &str = "kubernetes";
const STRATEGIC_MERGE: &str = "application/strategic-merge-patch+json";
pub const ROLLOUT_ANNOTATION: &str = "vigil.dev/rollout";
const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";
const JSON_PATCH: &str = "application/json-patch+json";
const REVISION: &str = "deployment.kubernetes.io/revision";
const TEMPLATE_HASH: &str = "pod-template-hash";

pub struct Kubernetes {
    api_server: String,
    namespace: String,
    deployment: String,
    container: String,
    image_repository: String,
    token: Option<String>,
    http: reqwest::Client,
}

/// Whether `name` is a DNS label (namespaces, containers) or, with `subdomain`, a DNS
/// subdomain (deployments).
fn is_dns_name(name: &str, subdomain: bool) -> bool {
    let limit = if subdomain { 253 } else { 63 };
    !name.is_empty()
        && name.len() <= limit
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (subdomain && c == '.'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// Whether `reference` is an image repository (`host[:port]/path`, no tag or digest).
fn is_repository(reference: &str) -> bool {
    !reference.is_empty()
        && reference.len() <= 255
        && !reference.contains('@')
        && reference.rsplit('/').next().is_some_and(|last| !last.contains(':') && !last.is_empty())
        && reference.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:".contains(c))
}

/// The image of `version` in `repository`: a tag, or a `sha256:` digest.
pub fn image_of(repository: &str, version: &str) -> Result<String, ProviderError> {
    if let Some(hex) = version.strip_prefix("sha256:")
        && hex.len() == 64
        && hex.chars().all(|c| c.is_ascii_hexdigit())
    {
        return Ok(format!("{repository}@{version}"));
    }
    let tag_like = version.len() <= 128
        && version.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && version.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !tag_like {
        return Err(ProviderError::Params(format!(
            "version {version:?} is not an image tag (letters, digits, '_', '.' and '-') or a sha256: digest"
        )));
    }
    Ok(format!("{repository}:{version}"))
}

impl Kubernetes {
    pub fn new(
        params: &Map<String, Value>,
        credential: Option<Credential>,
        http: &reqwest::Client,
    ) -> Result<Self, ProviderError> {
        let required = |name: &str| {
            string_param(params, name)?.ok_or_else(|| ProviderError::Params(format!("params.{name} is required")))
        };
        let dns_name = |name: &str, subdomain: bool| {
            let value = required(name)?;
            if is_dns_name(&value, subdomain) {
                Ok(value)
            } else {
                Err(ProviderError::Params(format!(
                    "params.{name} {value:?} must be a Kubernetes name (lowercase letters, digits and '-')"
                )))
            }
        };
        let image_repository = required("image_repository")?;
        if !is_repository(&image_repository) {
            return Err(ProviderError::Params(format!(
                "params.image_repository {image_repository:?} must be an image repository without a tag or digest"
            )));
        }
        let insecure = match params.get("insecure_skip_tls_verify") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(insecure)) => *insecure,
            Some(_) => {
                return Err(ProviderError::Params("params.insecure_skip_tls_verify must be true or false".to_owned()));
            }
        };
        let setting_ca = credential
            .as_ref()
            .and_then(|credential| credential.settings.get("ca_cert"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let ca_cert = string_param(params, "ca_cert")?.or(setting_ca);
        let http = match (&ca_cert, insecure) {
            (None, false) => http.clone(),
            (ca_cert, insecure) => own_client(ca_cert.as_deref(), insecure)?,
        };
        let token =
            match credential {
                None => None,
                Some(credential) => Some(credential.secrets.get("token").cloned().ok_or_else(|| {
                    ProviderError::Params("a kubernetes credential needs the secret token".to_owned())
                })?),
            };
        Ok(Self {
            api_server: url_param(params, "api_server")?,
            namespace: dns_name("namespace", false)?,
            deployment: dns_name("deployment", true)?,
            container: dns_name("container", false)?,
            image_repository,
            token,
            http,
        })
    }

    fn deployment_url(&self) -> String {
        format!("{}/apis/apps/v1/namespaces/{}/deployments/{}", self.api_server, self.namespace, self.deployment)
    }

    /// A call with the token; the parsed answer of a 2xx, else the refusal with the message
    /// of the API server's `Status`.
    async fn call(&self, request: reqwest::RequestBuilder, what: &str) -> Result<Value, ProviderError> {
        let token = self.token.as_ref().ok_or_else(|| {
            ProviderError::Params(
                "the kubernetes provider needs an integration of kind kubernetes with the secret token".to_owned(),
            )
        })?;
        let what = format!("{WHAT}'s {what} of deployment {}/{}", self.namespace, self.deployment);
        // A `Status` object's `message` says why it refused.
        let request = request.bearer_auth(token).header(reqwest::header::ACCEPT, "application/json");
        let (answer, body) = json_answer(request, what.clone()).await?;
        if answer.is_null() {
            return Err(ProviderError::Answer { what, detail: format!("not JSON: {}", excerpt(&body)) });
        }
        Ok(answer)
    }

    async fn deployment(&self) -> Result<Value, ProviderError> {
        self.call(self.http.get(self.deployment_url()), "read").await
    }

    fn container_image<'a>(&self, deployment: &'a Value) -> Option<&'a str> {
        template_image(&deployment["spec"]["template"], &self.container)
    }

    /// The template and revision of the newest ReplicaSet of `deployment` whose container ran
    /// `image`, if one is left.
    async fn previous_template(&self, deployment: &Value, image: &str) -> Result<Option<(Value, i64)>, ProviderError> {
        let uid = deployment["metadata"]["uid"].as_str().unwrap_or_default();
        let labels = deployment["spec"]["selector"]["matchLabels"].as_object().cloned().unwrap_or_default();
        if uid.is_empty() || labels.is_empty() {
            return Ok(None);
        }
        let selector: Vec<String> =
            labels.iter().map(|(key, value)| format!("{key}={}", value.as_str().unwrap_or_default())).collect();
        let base = format!("{}/apis/apps/v1/namespaces/{}/replicasets", self.api_server, self.namespace);
        let mut url =
            url::Url::parse(&base).map_err(|error| ProviderError::Params(format!("params.api_server: {error}")))?;
        url.query_pairs_mut().append_pair("labelSelector", &selector.join(","));
        let list = self.call(self.http.get(url.as_str()), "replica sets").await?;
        let owned = |set: &&Value| {
            set["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|owners| owners.iter().any(|owner| owner["uid"] == uid && owner["kind"] == "Deployment"))
        };
        let revision = |set: &Value| {
            set["metadata"]["annotations"][REVISION].as_str().and_then(|revision| revision.parse::<i64>().ok())
        };
        let found = list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(owned)
            .filter(|set| template_image(&set["spec"]["template"], &self.container) == Some(image))
            .filter_map(|set| Some((revision(set)?, set)))
            .max_by_key(|(revision, _)| *revision);
        Ok(found.map(|(revision, set)| {
            let mut template = set["spec"]["template"].clone();
            if let Some(labels) = template["metadata"]["labels"].as_object_mut() {
                labels.remove(TEMPLATE_HASH);
            }
            (template, revision)
        }))
    }

    async fn patch(&self, content_type: &str, body: &Value, what: &str) -> Result<Value, ProviderError> {
        let request = self
            .http
            .patch(self.deployment_url())
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body.to_string());
        self.call(request, what).await
    }
}

/// The image of `container` in a pod template.
fn template_image<'a>(template: &'a Value, container: &str) -> Option<&'a str> {
    template["spec"]["containers"]
        .as_array()?
        .iter()
        .find(|candidate| candidate["name"] == container)?
        .get("image")?
        .as_str()
}

/// A client that trusts the API server's CA (or, insecure, any certificate), with the shared
/// client's timeouts and without redirects.
fn own_client(ca_cert: Option<&str>, insecure: bool) -> Result<reqwest::Client, ProviderError> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("Vigil/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = ca_cert {
        use rustls::pki_types::pem::PemObject;
        let not_pem =
            |detail: String| ProviderError::Params(format!("params.ca_cert is not a PEM certificate: {detail}"));
        // reqwest reads a PEM only when the client is built, and skips what it cannot read.
        let mut certificates = 0;
        for certificate in rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let der = certificate.map_err(|error| not_pem(error.to_string()))?;
            let certificate = reqwest::Certificate::from_der(&der).map_err(|error| not_pem(error.to_string()))?;
            builder = builder.add_root_certificate(certificate);
            certificates += 1;
        }
        if certificates == 0 {
            return Err(not_pem("no CERTIFICATE block".to_owned()));
        }
    }
    if insecure {
        builder = builder.danger_accept_invalid_certs(true);
    }
    builder.build().map_err(|error| ProviderError::Params(format!("params.ca_cert cannot be used: {error}")))
}

fn number(value: &Value) -> i64 {
    value.as_i64().unwrap_or(0)
}

/// Where a deployment's rollout of the generation `generation` is, as `kubectl rollout status`
/// tells it.
fn outcome_of(deployment: &Value, generation: i64) -> RunOutcome {
    let status = &deployment["status"];
    let observed = number(&status["observedGeneration"]);
    let running = |detail: String| RunOutcome { status: RunStatus::Running, detail, url: None };
    if observed < generation.max(number(&deployment["metadata"]["generation"])) {
        return running("waiting for the deployment's new spec to be observed".to_owned());
    }
    let progressing = status["conditions"]
        .as_array()
        .and_then(|conditions| conditions.iter().find(|condition| condition["type"] == "Progressing"));
    if let Some(condition) = progressing.filter(|condition| condition["reason"] == "ProgressDeadlineExceeded") {
        let message = excerpt(condition["message"].as_str().unwrap_or_default());
        return RunOutcome {
            status: RunStatus::Failed,
            detail: format!("the deployment exceeded its progress deadline: {message}"),
            url: None,
        };
    }
    let wanted = deployment["spec"]["replicas"].as_i64().unwrap_or(1);
    let updated = number(&status["updatedReplicas"]);
    let replicas = number(&status["replicas"]);
    let available = number(&status["availableReplicas"]);
    if updated < wanted {
        return running(format!("{updated} of {wanted} new replicas updated"));
    }
    if replicas > updated {
        return running(format!("{} old replicas pending termination", replicas - updated));
    }
    if available < updated {
        return running(format!("{available} of {updated} updated replicas available"));
    }
    RunOutcome {
        status: RunStatus::Succeeded,
        detail: format!("rolled out: {updated} replicas updated and available"),
        url: None,
    }
}

#[async_trait::async_trait]
impl Provider for Kubernetes {
    async fn trigger(&self, request: &TriggerRequest<'_>) -> Result<RunHandle, ProviderError> {
        let image = image_of(&self.image_repository, request.version)?;
        let current = self.deployment().await?;
        if self.container_image(&current).is_none() {
            let names: Vec<&str> = current["spec"]["template"]["spec"]["containers"]
                .as_array()
                .map(|containers| containers.iter().filter_map(|container| container["name"].as_str()).collect())
                .unwrap_or_default();
            return Err(ProviderError::Params(format!(
                "params.container: deployment {}/{} has no container {:?} (it has {})",
                self.namespace,
                self.deployment,
                self.container,
                names.join(", ")
            )));
        }
        let cause = format!(
            "vigil rollout {} ({}) of {} to {}: {image}",
            request.rollout_id,
            request.kind.as_str(),
            request.service,
            request.environment
        );
        let previous = match request.kind {
            RolloutKind::Rollback => self.previous_template(&current, &image).await?,
            RolloutKind::Deploy => None,
        };
        let patched = match previous {
            Some((template, revision)) => {
                let mut annotations = current["metadata"]["annotations"].as_object().cloned().unwrap_or_default();
                annotations.insert(
                    CHANGE_CAUSE.to_owned(),
                    Value::from(format!("{cause} (the template of revision {revision})")),
                );
                annotations.insert(ROLLOUT_ANNOTATION.to_owned(), Value::from(request.rollout_id.to_string()));
                let patch = json!([
                    {"op": "test", "path": "/metadata/generation", "value": current["metadata"]["generation"]},
                    {"op": "replace", "path": "/spec/template", "value": template},
                    {"op": "add", "path": "/spec/paused", "value": false},
                    {"op": "add", "path": "/metadata/annotations", "value": annotations},
                ]);
                self.patch(JSON_PATCH, &patch, "rollback").await?
            }
            None => {
                let patch = json!({
                    "metadata": {"annotations": {CHANGE_CAUSE: cause, ROLLOUT_ANNOTATION: request.rollout_id.to_string()}},
                    "spec": {
                        "paused": false,
                        "template": {"spec": {"containers": [{"name": self.container, "image": image}]}},
                    },
                });
                self.patch(STRATEGIC_MERGE, &patch, "patch").await?
            }
        };
        let generation = number(&patched["metadata"]["generation"]);
        Ok(RunHandle { id: format!("{generation}:{image}"), url: None, finished: None })
    }

    async fn poll(&self, run_id: &str) -> Result<RunOutcome, ProviderError> {
        let (generation, image) = run_id
            .split_once(':')
            .and_then(|(generation, image)| Some((generation.parse::<i64>().ok()?, image)))
            .ok_or_else(|| ProviderError::Answer {
                what: "the run id".to_owned(),
                detail: format!("{run_id:?} is not a deployment generation and image"),
            })?;
        let deployment = self.deployment().await?;
        match self.container_image(&deployment) {
            Some(current) if current == image => Ok(outcome_of(&deployment, generation)),
            current => Ok(RunOutcome {
                status: RunStatus::Failed,
                detail: format!(
                    "the container {} was changed to {} meanwhile: another rollout took over",
                    self.container,
                    current.unwrap_or("nothing")
                ),
                url: None,
            }),
        }
    }

    /// Pauses the deployment where it is, as `kubectl rollout pause` does: `kubectl rollout
    /// resume`, or the next deploy, goes on.
    async fn cancel(&self, _run_id: &str, _reason: &str) -> Result<(), ProviderError> {
        self.patch(STRATEGIC_MERGE, &json!({"spec": {"paused": true}}), "pause").await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(generation: i64, observed: i64, replicas: [i64; 3], reason: Option<&str>) -> Value {
        let [updated, total, available] = replicas;
        let conditions = match reason {
            Some(reason) => {
                json!([{"type": "Progressing", "status": "False", "reason": reason, "message": "too slow"}])
            }
            None => json!([{"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}]),
        };
        json!({"metadata": {"generation": generation}, "spec": {"replicas": 3},
               "status": {"observedGeneration": observed, "updatedReplicas": updated, "replicas": total,
                          "availableReplicas": available, "conditions": conditions}})
    }

    #[test]
    fn a_rollout_ends_as_kubectl_rollout_status_says() {
        let status = |deployment: Value| outcome_of(&deployment, 2).status;
        assert_eq!(status(deployment(2, 1, [3, 3, 3], None)), RunStatus::Running, "not observed");
        assert_eq!(status(deployment(2, 2, [1, 4, 3], None)), RunStatus::Running, "updating");
        assert_eq!(status(deployment(2, 2, [3, 4, 3], None)), RunStatus::Running, "an old replica");
        assert_eq!(status(deployment(2, 2, [3, 3, 2], None)), RunStatus::Running, "unavailable");
        assert_eq!(status(deployment(2, 2, [3, 3, 3], None)), RunStatus::Succeeded);
        assert_eq!(status(deployment(3, 2, [3, 3, 3], None)), RunStatus::Running, "a newer spec");
        assert_eq!(status(deployment(2, 2, [1, 4, 3], Some("ProgressDeadlineExceeded"))), RunStatus::Failed);
    }

    #[test]
    fn versions_become_tags_or_digests() {
        assert_eq!(
            image_of("registry.example.com:5000/shop", "1.2.3").unwrap(),
            "registry.example.com:5000/shop:1.2.3"
        );
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(image_of("shop", &digest).unwrap(), format!("shop@{digest}"));
        assert!(image_of("shop", "release/2026-12").is_err());
        assert!(image_of("shop", "1.0+build.5").is_err());
        assert!(image_of("shop", "-rf").is_err());
    }

    #[test]
    fn parameters_are_checked_and_named() {
        let base = json!({"api_server": "https://k8s.example:6443", "namespace": "shop", "deployment": "web",
                          "container": "app", "image_repository": "registry.example.com/shop"});
        let build = |extra: Value| {
            let mut params = base.clone();
            for (key, value) in extra.as_object().unwrap() {
                params[key] = value.clone();
            }
            Kubernetes::new(params.as_object().unwrap(), None, &reqwest::Client::new())
        };
        assert!(build(json!({})).is_ok());
        assert!(build(json!({"insecure_skip_tls_verify": true})).is_ok());
        let error = |extra: Value| build(extra).err().map(|error| error.to_string()).unwrap_or_default();
        assert!(error(json!({"namespace": "Shop"})).starts_with("params.namespace"));
        assert!(error(json!({"deployment": "../x"})).starts_with("params.deployment"));
        assert!(error(json!({"image_repository": "shop:1.0"})).starts_with("params.image_repository"));
        assert!(error(json!({"ca_cert": "not a certificate"})).starts_with("params.ca_cert"));
        assert!(error(json!({"insecure_skip_tls_verify": "yes"})).starts_with("params.insecure_skip_tls_verify"));
    }
}
