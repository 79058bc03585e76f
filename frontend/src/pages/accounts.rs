//! Signing in, the user's own account, and the administrators' settings: users, tokens, single
//! sign-on status and the audit log.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;
use vigil_proto::auth::{AuditEvent, CreatedToken, Role, Scope, TokenInfo, TokenKind, User};
use vigil_proto::paths;

use crate::error::UiError;

use crate::accounts::{
    AuditLog, ChangePassword, CreateMyToken, CreateServiceToken, CreateUser, RevokeMyToken, RevokeToken, UpdateUser,
    audit_log, current_session, list_tokens, list_users, my_tokens, sso_button, sso_settings,
};

/// The sign-in form. A plain HTML form: it works before (and without) the wasm bundle.
#[component]
pub fn LoginPage() -> impl IntoView {
    let query = use_query_map();
    let error = move || query.read().get("error");
    let next = move || query.read().get("next").unwrap_or_else(|| "/".to_owned());
    let sso = Resource::new(|| (), |_| sso_button());
    let sso_link = move || {
        sso.get().and_then(Result::ok).filter(|status| status.enabled).map(|status| {
            let href = format!("{}?next={}", paths::AUTH_OIDC_LOGIN, super::encode(&next()));
            view! { <a class="sso-button" href=href>{status.label}</a> }
        })
    };
    view! {
        <Title text="Sign in · Vigil"/>
        <div class="login">
            <form class="login-form" method="post" action=paths::AUTH_LOGIN>
                <h1>"Vigil"</h1>
                {move || error().map(|error| view! { <p class="error login-error">{error}</p> })}
                <label>"User name" <input name="username" autocomplete="username" required autofocus/></label>
                <label>
                    "Password" <input type="password" name="password" autocomplete="current-password" required/>
                </label>
                <input type="hidden" name="next" value=next/>
                <button type="submit">"Sign in"</button>
                <Suspense fallback=|| ()>{sso_link}</Suspense>
            </form>
        </div>
    }
}

fn when(at: Option<vigil_proto::Timestamp>) -> String {
    at.map_or_else(|| "—".to_owned(), |at| at.to_rfc3339().chars().take(19).collect::<String>().replace('T', " "))
}

fn error_text(error: &UiError) -> String {
    error.to_string()
}

/// Shows a token once, right after it was created.
#[component]
fn NewTokenNotice(created: Signal<Option<Result<CreatedToken, UiError>>>) -> impl IntoView {
    move || {
        created.get().map(|result| match result {
            Ok(created) => view! {
                <div class="notice new-token">
                    <p>"Token " <strong>{created.info.name}</strong> " created. Copy it now: it is not shown again."</p>
                    <code class="token-value">{created.token}</code>
                </div>
            }
            .into_any(),
            Err(error) => view! { <p class="error">{error_text(&error)}</p> }.into_any(),
        })
    }
}

#[component]
fn TokenTable(tokens: Vec<TokenInfo>, revoke: Callback<i64>) -> impl IntoView {
    view! {
        <table class="table tokens">
            <thead>
                <tr>
                    <th>"Name"</th><th>"Kind"</th><th>"Scope / owner"</th><th>"Created"</th><th>"Expires"</th>
                    <th>"Last used"</th><th></th>
                </tr>
            </thead>
            <tbody>
                {tokens
                    .into_iter()
                    .map(|token| {
                        let id = token.id;
                        let revoked = token.revoked_at.is_some();
                        let kind = match token.kind {
                            TokenKind::Personal => "personal",
                            TokenKind::Service => "service",
                        };
                        let what = token.scope.map(|scope| scope.as_str().to_owned()).or(token.owner).unwrap_or_default();
                        view! {
                            <tr class:revoked=revoked>
                                <td class="token-name">{token.name}</td>
                                <td>{kind}</td>
                                <td>{what}</td>
                                <td>{when(Some(token.created_at))}</td>
                                <td>{when(token.expires_at)}</td>
                                <td>{when(token.last_used_at)}</td>
                                <td>
                                    {if revoked {
                                        view! { <span class="muted">"revoked"</span> }.into_any()
                                    } else {
                                        view! {
                                            <button class="revoke" on:click=move |_| revoke.run(id)>"Revoke"</button>
                                        }
                                        .into_any()
                                    }}
                                </td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
    }
}

/// The signed-in user's password and personal tokens.
#[component]
pub fn AccountPage() -> impl IntoView {
    let change_password = ServerAction::<ChangePassword>::new();
    let create = ServerAction::<CreateMyToken>::new();
    let revoke = ServerAction::<RevokeMyToken>::new();
    let tokens = Resource::new(move || (create.version().get(), revoke.version().get()), |_| my_tokens());
    let password_result = change_password.value();
    view! {
        <Title text="Account · Vigil"/>
        <h1>"Account"</h1>
        <section class="panel">
            <h2>"Password"</h2>
            <ActionForm action=change_password attr:class="form password-form">
                <label>
                    "Current password"
                    <input type="password" name="current_password" autocomplete="current-password" required/>
                </label>
                <label>
                    "New password" <input type="password" name="new_password" autocomplete="new-password" required/>
                </label>
                <button type="submit">"Change password"</button>
            </ActionForm>
            {move || {
                password_result
                    .get()
                    .map(|result| match result {
                        Ok(()) => {
                            view! { <p class="notice password-changed">"Password changed; your other sessions have ended."</p> }
                                .into_any()
                        }
                        Err(error) => view! { <p class="error">{error_text(&error)}</p> }.into_any(),
                    })
            }}
        </section>
        <section class="panel">
            <h2>"Personal tokens"</h2>
            <p class="muted">"A personal token acts as you, with your role, from scripts and the command line."</p>
            <ActionForm action=create attr:class="form inline-form">
                <input name="name" placeholder="name" required/>
                <input name="expires_in_days" placeholder="expires in days (empty: never)"/>
                <button type="submit">"Create token"</button>
            </ActionForm>
            <NewTokenNotice created=create.value().into()/>
            <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || {
                    tokens
                        .get()
                        .map(|result| match result {
                            Ok(tokens) => {
                                let revoke = Callback::new(move |id| {
                                    revoke.dispatch(RevokeMyToken { id });
                                });
                                view! { <TokenTable tokens revoke/> }.into_any()
                            }
                            Err(error) => view! { <p class="error">{error_text(&error)}</p> }.into_any(),
                        })
                }}
            </Transition>
        </section>
    }
}

/// Administrators' settings, rendered for administrators only (and every call is checked on
/// the server too).
#[component]
pub fn SettingsPage() -> impl IntoView {
    let session = Resource::new(|| (), |_| current_session());
    view! {
        <Title text="Settings · Vigil"/>
        <h1>"Settings"</h1>
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || {
                session
                    .get()
                    .map(|result| match result {
                        Ok(session) if session.role == Role::Admin => {
                            view! {
                                <UsersSection/>
                                <TokensSection/>
                                <SsoSection/>
                                <AuditSection/>
                            }
                                .into_any()
                        }
                        Ok(session) => {
                            view! {
                                <p class="notice settings-admins-only">
                                    "Settings are for administrators; you are signed in as "
                                    {session.username} " with the role " {session.role.as_str()}
                                    ". Your own password and tokens are under " <a href="/account">"Account"</a> "."
                                </p>
                            }
                                .into_any()
                        }
                        Err(error) => view! { <p class="error">{error_text(&error)}</p> }.into_any(),
                    })
            }}
        </Suspense>
    }
}

#[component]
fn SsoSection() -> impl IntoView {
    let status = Resource::new(|| (), |_| sso_settings());
    view! {
        <section class="panel">
            <h2>"Single sign-on"</h2>
            <Suspense fallback=|| view! { <p class="loading">"Checking…"</p> }>
                {move || {
                    status
                        .get()
                        .map(|result| match result {
                            Ok(status) if !status.enabled => {
                                view! {
                                    <p class="sso-status">
                                        "OpenID Connect is not configured ([auth.oidc]): users sign in with a password."
                                    </p>
                                }
                                    .into_any()
                            }
                            Ok(status) => {
                                let issuer = status.issuer.unwrap_or_default();
                                match status.problem {
                                    None => {
                                        view! {
                                            <p class="sso-status">"OpenID Connect with " <code>{issuer}</code> ": the provider answers."</p>
                                        }
                                            .into_any()
                                    }
                                    Some(problem) => {
                                        view! {
                                            <p class="sso-status error">"OpenID Connect with " <code>{issuer}</code> ": " {problem}</p>
                                        }
                                            .into_any()
                                    }
                                }
                            }
                            Err(error) => view! { <p class="error">{error_text(&error)}</p> }.into_any(),
                        })
                }}
            </Suspense>
        </section>
    }
}

#[component]
fn UsersSection() -> impl IntoView {
    let create = ServerAction::<CreateUser>::new();
    let update = ServerAction::<UpdateUser>::new();
    let users = Resource::new(move || (create.version().get(), update.version().get()), |_| list_users());
    let row = move |user: User| {
        let id = user.id;
        let disabled = user.disabled;
        let username = user.username.clone();
        view! {
            <tr class:disabled=disabled data-user=username>
                <td class="user-name">{user.username}</td>
                <td>{user.display_name}</td>
                <td>
                    <select
                        class="role-select"
                        on:change=move |event| {
                            update.dispatch(UpdateUser { id, role: event_target_value(&event), disabled: None });
                        }
                    >
                        {Role::ALL
                            .into_iter()
                            .map(|role| {
                                view! { <option value=role.as_str() selected=role == user.role>{role.as_str()}</option> }
                            })
                            .collect_view()}
                    </select>
                </td>
                <td>{if user.sso { "single sign-on" } else { "password" }}</td>
                <td>{when(Some(user.created_at))}</td>
                <td>
                    <button
                        class="toggle-disabled"
                        on:click=move |_| {
                            update.dispatch(UpdateUser { id, role: String::new(), disabled: Some(!disabled) });
                        }
                    >
                        {if disabled { "Enable" } else { "Disable" }}
                    </button>
                </td>
            </tr>
        }
    };
    view! {
        <section class="panel users">
            <h2>"Users"</h2>
            <ActionForm action=create attr:class="form inline-form create-user">
                <input name="username" placeholder="user name" required/>
                <input name="display_name" placeholder="display name"/>
                <select name="role">
                    {Role::ALL.into_iter().map(|role| view! { <option value=role.as_str()>{role.as_str()}</option> }).collect_view()}
                </select>
                <input type="password" name="password" placeholder="password (empty: single sign-on only)" autocomplete="new-password"/>
                <button type="submit">"Create user"</button>
            </ActionForm>
            {move || {
                create.value().get().and_then(Result::err).map(|error| view! { <p class="error">{error_text(&error)}</p> })
            }}
            {move || {
                update.value().get().and_then(Result::err).map(|error| view! { <p class="error">{error_text(&error)}</p> })
            }}
            <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || {
                    users
                        .get()
                        .map(|result| match result {
                            Ok(users) => {
                                view! {
                                    <table class="table">
                                        <thead>
                                            <tr>
                                                <th>"User"</th><th>"Name"</th><th>"Role"</th><th>"Signs in with"</th>
                                                <th>"Created"</th><th></th>
                                            </tr>
                                        </thead>
                                        <tbody>{users.into_iter().map(row).collect_view()}</tbody>
                                    </table>
                                }
                                .into_any()
                            }
                            Err(error) => view! { <p class="error">{error_text(&error)}</p> }.into_any(),
                        })
                }}
            </Transition>
        </section>
    }
}

#[component]
fn TokensSection() -> impl IntoView {
    let create = ServerAction::<CreateServiceToken>::new();
    let revoke = ServerAction::<RevokeToken>::new();
    let tokens = Resource::new(move || (create.version().get(), revoke.version().get()), |_| list_tokens());
    view! {
        <section class="panel tokens-section">
            <h2>"Tokens"</h2>
            <p class="muted">"Service tokens belong to no user: agents use ingest tokens, CI uses deploy tokens."</p>
            <ActionForm action=create attr:class="form inline-form">
                <input name="name" placeholder="name" required/>
                <select name="scope">
                    {Scope::ALL.into_iter().map(|scope| view! { <option value=scope.as_str()>{scope.as_str()}</option> }).collect_view()}
                </select>
                <input name="expires_in_days" placeholder="expires in days (empty: never)"/>
                <button type="submit">"Create service token"</button>
            </ActionForm>
            <NewTokenNotice created=create.value().into()/>
            <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || {
                    tokens
                        .get()
                        .map(|result| match result {
                            Ok(tokens) => {
                                let revoke = Callback::new(move |id| {
                                    revoke.dispatch(RevokeToken { id });
                                });
                                view! { <TokenTable tokens revoke/> }.into_any()
                            }
                            Err(error) => view! { <p class="error">{error_text(&error)}</p> }.into_any(),
                        })
                }}
            </Transition>
        </section>
    }
}

#[component]
fn AuditSection() -> impl IntoView {
    let filter = ServerAction::<AuditLog>::new();
    let initial = Resource::new(|| (), |_| audit_log(String::new(), String::new(), None));
    let page = move || filter.value().get().or_else(|| initial.get());
    let row = |event: AuditEvent| {
        let outcome = match event.outcome {
            vigil_proto::auth::AuditOutcome::Success => "success",
            vigil_proto::auth::AuditOutcome::Failure => "failure",
            vigil_proto::auth::AuditOutcome::Denied => "denied",
        };
        view! {
            <tr class=format!("audit-event outcome-{outcome}")>
                <td>{when(Some(event.at))}</td>
                <td class="audit-actor">{event.actor}</td>
                <td>{event.source_ip}</td>
                <td class="audit-action">{event.action}</td>
                <td class="audit-target">{event.target}</td>
                <td>{outcome}</td>
                <td>{event.detail}</td>
            </tr>
        }
    };
    view! {
        <section class="panel audit">
            <h2>"Audit log"</h2>
            <ActionForm action=filter attr:class="form inline-form audit-filter">
                <input name="actor" placeholder="actor"/>
                <input name="action" placeholder="action (user. for every user action)"/>
                <button type="submit">"Filter"</button>
            </ActionForm>
            <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || {
                    page()
                        .map(|result| match result {
                            Ok(page) => {
                                view! {
                                    <table class="table">
                                        <thead>
                                            <tr>
                                                <th>"When (UTC)"</th><th>"Who"</th><th>"From"</th><th>"Action"</th>
                                                <th>"Target"</th><th>"Result"</th><th>"Detail"</th>
                                            </tr>
                                        </thead>
                                        <tbody>{page.events.into_iter().map(row).collect_view()}</tbody>
                                    </table>
                                }
                                .into_any()
                            }
                            Err(error) => view! { <p class="error">{error_text(&error)}</p> }.into_any(),
                        })
                }}
            </Transition>
        </section>
    }
}
