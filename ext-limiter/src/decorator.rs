//! Route decorators: `limit("5/minute")`, `shared_limit("uploads", "10/hour")`, `exempt()`.

use std::num::NonZeroU32;
use std::sync::{Arc, OnceLock};

use flagon::axum::extract::Request;
use flagon::axum::response::{IntoResponse, Response};
use flagon::http::StatusCode;
use flagon::{Decorator, Next, tracing};

use crate::config::FailMode;
use crate::error::LimitParseError;
use crate::parse::{Rate, parse_limits};
use crate::response::{Passed, success_headers};
use crate::runtime::{Checked, LimitSet, RouteTag, SetKind};

/// The provider name decorators carry: the extension's name.
pub(crate) const PROVIDER: &str = "limiter";
/// The description of [`exempt`].
pub(crate) const EXEMPT: &str = "limit exempt";

type CostFn = Arc<dyn Fn(&Request) -> u32 + Send + Sync>;
type DeductFn = Arc<dyn Fn(&Response) -> bool + Send + Sync>;

/// A route limit with options, turned into a [`Decorator`] by [`Limit::decorator`]
/// (Flask-Limiter's `@limiter.limit(value, per_method=..., cost=...)`).
///
/// ```
/// use flagon::Route;
/// use flagon_limiter::Limit;
///
/// async fn upload() -> &'static str { "stored" }
/// let route = Route::post("/upload", upload)
///     .with(Limit::new("10/hour").per_method().cost(2).decorator());
/// ```
#[derive(Clone)]
#[must_use = "a limit does nothing until `.decorator()` is put on a route"]
pub struct Limit {
    raw: String,
    scope: Option<String>,
    per_method: bool,
    cost: Option<CostFn>,
    fixed_cost: u32,
    deduct_when: Option<DeductFn>,
    fail_mode: Option<FailMode>,
}

impl Limit {
    /// A limit from a limit string (`"5/minute"`, `"100/day; 10/minute"`). A malformed
    /// string fails the app's build, naming the route's endpoint.
    pub fn new(limit: impl Into<String>) -> Limit {
        Limit {
            raw: limit.into(),
            scope: None,
            per_method: false,
            cost: None,
            fixed_cost: 1,
            deduct_when: None,
            fail_mode: None,
        }
    }

    /// What this limit does when Redis cannot decide, instead of `[limiter] fail_mode`
    /// (e.g. `closed` on a login route of an app that fails open). Without Redis storage
    /// it changes nothing.
    pub fn fail_mode(mut self, mode: FailMode) -> Limit {
        self.fail_mode = Some(mode);
        self
    }

    /// Counts only the responses `f` selects (failed logins: `|res| res.status() == 401`).
    /// The check before the handler takes nothing; the response is counted after it, so
    /// requests running at the same time can all pass before any is counted (as in
    /// Flask-Limiter, this is not atomic).
    pub fn deduct_when(mut self, f: impl Fn(&Response) -> bool + Send + Sync + 'static) -> Limit {
        self.deduct_when = Some(Arc::new(f));
        self
    }

    /// One bucket for every route carrying a limit of this scope name (Flask-Limiter's
    /// `shared_limit`). Every use of one scope must give the same limit string.
    pub fn shared(mut self, scope: impl Into<String>) -> Limit {
        self.scope = Some(scope.into());
        self
    }

    /// Counts each HTTP method separately.
    pub fn per_method(mut self) -> Limit {
        self.per_method = true;
        self
    }

    /// Each request takes `cost` (default 1); a cost of 0 counts nothing. A cost above a
    /// limit's count is never admitted.
    pub fn cost(mut self, cost: u32) -> Limit {
        self.fixed_cost = cost;
        self.cost = None;
        self
    }

    /// The cost computed from each request (0 counts nothing).
    pub fn cost_with(mut self, f: impl Fn(&Request) -> u32 + Send + Sync + 'static) -> Limit {
        self.cost = Some(Arc::new(f));
        self
    }

    fn description(&self) -> String {
        let mut d = match &self.scope {
            Some(scope) => format!("shared limit {scope}: {}", self.raw),
            None => format!("limit {}", self.raw),
        };
        let mut opts = Vec::new();
        if self.per_method {
            opts.push("per method".to_owned());
        }
        if self.cost.is_some() {
            opts.push("computed cost".to_owned());
        } else if self.fixed_cost != 1 {
            opts.push(format!("cost {}", self.fixed_cost));
        }
        if self.deduct_when.is_some() {
            opts.push("deduct when".to_owned());
        }
        if let Some(m) = self.fail_mode {
            opts.push(format!("fail {}", m.as_str()));
        }
        if !opts.is_empty() {
            d.push_str(&format!(" [{}]", opts.join(", ")));
        }
        d
    }

    /// The decorator to put on a route or a blueprint.
    pub fn decorator(self) -> Decorator {
        let description = self.description();
        let rates = parse_limits(&self.raw);
        let spec = Arc::new(Spec {
            limit: self,
            rates,
            own: OnceLock::new(),
        });
        Decorator::new(PROVIDER, description, move |req: Request, next: Next| {
            let spec = spec.clone();
            async move { spec.run(req, next).await }
        })
    }
}

/// `limit("5/minute")`: a route decorator limiting the route (or each route of a
/// blueprint) to the given limits, per key. It replaces the default limits on that route.
///
/// ```
/// use flagon::Route;
/// async fn login() -> &'static str { "welcome" }
/// let route = Route::post("/login", login).with(flagon_limiter::limit("5/minute"));
/// ```
pub fn limit(limit: impl Into<String>) -> Decorator {
    Limit::new(limit).decorator()
}

/// `shared_limit("uploads", "10/hour")`: one bucket per key for every route that carries
/// this scope.
pub fn shared_limit(scope: impl Into<String>, limit: impl Into<String>) -> Decorator {
    Limit::new(limit).shared(scope).decorator()
}

/// Exempts a route (or every route of a blueprint) from the default and configured limits.
///
/// ```
/// use flagon::Route;
/// async fn health() -> &'static str { "ok" }
/// let route = Route::get("/ping", health).with(flagon_limiter::exempt());
/// ```
pub fn exempt() -> Decorator {
    Decorator::new(PROVIDER, EXEMPT, |req: Request, next: Next| next.run(req))
}

/// Splits a limiter decorator's description into (scope, limit string); `None` for
/// [`exempt`].
pub(crate) fn read_description(d: &str) -> Option<(Option<&str>, &str)> {
    if d == EXEMPT {
        return None;
    }
    let cut = |s: &'_ str| -> usize { s.find(" [").unwrap_or(s.len()) };
    if let Some(rest) = d.strip_prefix("shared limit ") {
        let (scope, raw) = rest.split_once(": ")?;
        Some((Some(scope), &raw[..cut(raw)]))
    } else {
        let raw = d.strip_prefix("limit ")?;
        Some((None, &raw[..cut(raw)]))
    }
}

struct Spec {
    limit: Limit,
    rates: Result<Vec<Rate>, LimitParseError>,
    own: OnceLock<Arc<LimitSet>>,
}

/// What [`Spec::now`] decided without waiting.
enum Now {
    /// Run the route: exempt, cost 0, or admitted (with `headers_on_success`, the set and
    /// what passed, for the response's headers).
    Run(Option<(Arc<LimitSet>, Passed)>),
    /// Answer this instead of running the route.
    Answer(Response),
    /// Needs waiting (Redis storage, `deduct_when`): checked on the owned path.
    Wait(RouteTag),
}

impl Spec {
    async fn run(&self, req: Request, next: Next) -> Response {
        let mut req = req;
        match self.now(&mut req) {
            Now::Run(None) => next.run(req).await,
            Now::Run(Some((set, passed))) => {
                let mut res = next.run(req).await;
                success_headers(res.headers_mut(), &set.rates, &passed);
                res
            }
            Now::Answer(res) => res,
            Now::Wait(tag) => self.run_waiting(&tag, req, next).await,
        }
    }

    /// The set this limit counts in (`None` only in an app that is not built right), and
    /// the route it counts `route` as.
    fn set<'a>(&'a self, tag: &'a RouteTag) -> Option<(&'a Arc<LimitSet>, u32)> {
        let rt = &tag.rt;
        match &self.limit.scope {
            Some(scope) => rt.shared.get()?.get(scope).map(|set| (set, 0)),
            // The build refuses malformed limits; `Err` is unreachable in a built app.
            None => {
                let rates = self.rates.as_ref().ok()?;
                let set = self.own.get_or_init(|| {
                    rt.set_failing(
                        rates.clone(),
                        self.limit.per_method,
                        SetKind::Decorator,
                        self.limit.fail_mode,
                    )
                });
                Some((set, tag.route))
            }
        }
    }

    /// Everything that needs no waiting, reading the request's tag in place: with
    /// in-process storage and no `deduct_when` (the usual case), the whole check, with no
    /// reference count touched on the way.
    fn now(&self, req: &mut Request) -> Now {
        let Some(tag) = req.extensions().get::<RouteTag>() else {
            // The limiter's finish step tags every route carrying its decorators.
            tracing::error!(target: "flagon_limiter", "a limit decorator ran on an untagged route");
            return Now::Answer(StatusCode::INTERNAL_SERVER_ERROR.into_response());
        };
        let rt = &tag.rt;
        if rt.exempt(req) {
            return Now::Run(None);
        }
        if rt.remote() || self.limit.deduct_when.is_some() {
            return Now::Wait(tag.clone());
        }
        let Some(cost) = NonZeroU32::new(self.cost(req)) else {
            return Now::Run(None);
        };
        let Some((set, route)) = self.set(tag) else {
            return Now::Answer(StatusCode::INTERNAL_SERVER_ERROR.into_response());
        };
        let who = rt.who(req);
        match set.local(req.method(), route, who.clone(), cost, true) {
            Checked::Passed(passed) => Now::Run(rt.on_success.then(|| (set.clone(), passed))),
            Checked::Open => Now::Run(None),
            Checked::Refused(refusal) => {
                let (tag, set) = (tag.clone(), set.clone());
                Now::Answer(
                    tag.rt
                        .refuse(req, &tag.endpoint, &who, &set.rates, &refusal),
                )
            }
            Checked::Unavailable(wait) => {
                let rt = tag.rt.clone();
                Now::Answer(rt.unavailable(req, wait))
            }
        }
    }

    fn cost(&self, req: &Request) -> u32 {
        match &self.limit.cost {
            Some(f) => f(req),
            None => self.limit.fixed_cost,
        }
    }

    /// The check that may wait: on Redis, or counted after the response (`deduct_when`).
    async fn run_waiting(&self, tag: &RouteTag, mut req: Request, next: Next) -> Response {
        let rt = &tag.rt;
        let Some(cost) = NonZeroU32::new(self.cost(&req)) else {
            return next.run(req).await;
        };
        let Some((set, route)) = self.set(tag) else {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        };
        let who = rt.who(&req);
        let method = req.method().clone();
        let endpoint = &tag.endpoint;
        if let Some(deduct) = &self.limit.deduct_when {
            match set
                .check(rt, &method, route, endpoint, who.clone(), cost, false)
                .await
            {
                Checked::Refused(refusal) => {
                    return rt.refuse(&mut req, endpoint, &who, &set.rates, &refusal);
                }
                Checked::Unavailable(wait) => return rt.unavailable(&mut req, wait),
                Checked::Passed(_) | Checked::Open => {}
            }
            let res = next.run(req).await;
            if deduct(&res) {
                // Counted now; its own outcome no longer matters to this response.
                let _ = set
                    .check(rt, &method, route, endpoint, who, cost, true)
                    .await;
            }
            return res;
        }
        match set
            .check(rt, &method, route, endpoint, who.clone(), cost, true)
            .await
        {
            Checked::Passed(passed) => {
                let mut res = next.run(req).await;
                if rt.on_success {
                    success_headers(res.headers_mut(), &set.rates, &passed);
                }
                res
            }
            Checked::Open => next.run(req).await,
            Checked::Refused(refusal) => rt.refuse(&mut req, endpoint, &who, &set.rates, &refusal),
            Checked::Unavailable(wait) => rt.unavailable(&mut req, wait),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_read_back() {
        let d = Limit::new("5/minute").per_method().cost(2).description();
        assert_eq!(d, "limit 5/minute [per method, cost 2]");
        let d = Limit::new("5/minute")
            .fail_mode(FailMode::Closed)
            .description();
        assert_eq!(d, "limit 5/minute [fail closed]");
        assert_eq!(read_description(&d), Some((None, "5/minute")));
        assert_eq!(read_description(&d), Some((None, "5/minute")));
        let d = Limit::new("1/second; 10/hour").shared("up").description();
        assert_eq!(
            read_description(&d),
            Some((Some("up"), "1/second; 10/hour"))
        );
        assert_eq!(read_description(EXEMPT), None);
    }
}
