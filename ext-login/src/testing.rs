//! The testing kit: [`login_as`] logs a test client in without scripting the login form, and
//! [`TestUser`] / [`Users`] are a user type and an in-memory directory for tests and
//! examples.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use flagon::testing::TestClient;

use crate::login::Handle;
use crate::permissions::Permissions;
use crate::user::{User, UserLoader};

/// Logs `client` in as `user`: plants a remember-me token for `user` in the app's store and
/// its cookie in the client's jar, so the client's next request is logged in (the session
/// is created then, with a fresh id; the login is not fresh, as after a remember-me
/// cookie). Panics if the app has no `Login<U>`.
///
/// ```
/// use flagon::{App, Route};
/// use flagon::testing::{TestClient, testing_config};
/// use flagon_login::testing::{TestUser, Users, login_as};
/// use flagon_login::{CurrentUser, Login};
///
/// async fn me(user: CurrentUser<TestUser>) -> String { user.name.clone() }
///
/// # flagon::tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let users = Users::default();
/// let ada = users.add(TestUser::new("1", "ada", "hash-1"));
/// let app = App::builder()
///     .settings(testing_config())
///     .register(Login::new(users.loader()))
///     .route(Route::get("/me", me))
///     .build()
///     .unwrap();
/// let client = TestClient::new(&app);
/// assert_eq!(client.get("/me").send().await.status(), 401);
/// login_as(&client, &ada).await;
/// assert_eq!(client.get("/me").send().await.text(), "ada");
/// # });
/// ```
pub async fn login_as<U: User>(client: &TestClient, user: &U) {
    client
        .start()
        .await
        .expect("the app's startup hooks failed");
    let h = client
        .app()
        .handle()
        .state::<Handle<U>>()
        .expect("no Login extension for this user type is registered");
    let store =
        h.rt.store()
            .expect("the remember-token store is open after startup");
    let digest = h.rt.auth_digest(user);
    let (token, _) = crate::tokens::issue(
        store,
        &user.id(),
        &digest,
        h.rt.now(),
        h.rt.cfg.remember_duration,
    )
    .await
    .expect("the remember-token store failed");
    client.set_cookie(&h.rt.cookie.name, &token);
}

/// A user for tests and examples.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestUser {
    /// Id.
    pub id: String,
    /// Name (`current_user.name`).
    pub name: String,
    /// The stored password hash (its auth hash).
    pub password_hash: String,
    /// Active.
    pub active: bool,
    /// Permission bits.
    pub permissions: Permissions,
    /// Named permissions.
    pub named: Vec<String>,
}

impl TestUser {
    /// An active user with no permissions.
    pub fn new(id: &str, name: &str, password_hash: &str) -> TestUser {
        TestUser {
            id: id.into(),
            name: name.into(),
            password_hash: password_hash.into(),
            active: true,
            permissions: Permissions::empty(),
            named: Vec::new(),
        }
    }

    /// With `permissions`.
    pub fn with_permissions(mut self, permissions: Permissions) -> TestUser {
        self.permissions = permissions;
        self
    }
}

impl User for TestUser {
    fn id(&self) -> String {
        self.id.clone()
    }
    fn is_active(&self) -> bool {
        self.active
    }
    fn auth_hash(&self) -> Vec<u8> {
        self.password_hash.as_bytes().to_vec()
    }
    fn permissions(&self) -> Permissions {
        self.permissions
    }
    fn has_named_permission(&self, name: &str) -> bool {
        self.named.iter().any(|n| n == name)
    }
    fn display_name(&self) -> String {
        self.name.clone()
    }
}

/// An in-memory user directory (cheap to clone; clones share it): tests change a user
/// (a password, `active`) and the next request sees it.
#[derive(Clone, Debug, Default)]
pub struct Users(Arc<Mutex<HashMap<String, TestUser>>>);

impl Users {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, TestUser>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds (or replaces) `user`; returns it.
    pub fn add(&self, user: TestUser) -> TestUser {
        self.lock().insert(user.id.clone(), user.clone());
        user
    }

    /// The user with `id`.
    pub fn get(&self, id: &str) -> Option<TestUser> {
        self.lock().get(id).cloned()
    }

    /// The user named `name`.
    pub fn by_name(&self, name: &str) -> Option<TestUser> {
        self.lock().values().find(|u| u.name == name).cloned()
    }

    /// Changes the user with `id`.
    pub fn update(&self, id: &str, f: impl FnOnce(&mut TestUser)) {
        if let Some(u) = self.lock().get_mut(id) {
            f(u);
        }
    }

    /// Removes the user with `id`.
    pub fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    /// A loader over this directory.
    pub fn loader(&self) -> impl UserLoader<TestUser> + use<> {
        let users = self.clone();
        move |id: String| {
            let found = users.get(&id);
            async move { Ok::<_, std::convert::Infallible>(found) }
        }
    }
}
