//! The effective configuration as TOML (`jobq config check`): every
//! setting with the value the daemon would use, defaults included, under
//! the file's own key names, so the output is itself a valid config file.
//! Secrets are never shown: a token is `<hidden>`.

use std::time::Duration;

use toml::{Table, Value};

use super::{Config, Durability, LogFormat, OnInterrupted};

/// What a token is shown as.
pub const HIDDEN: &str = "<hidden>";

impl Config {
    /// The settings as a TOML document, tokens hidden.
    pub fn to_toml(&self) -> String {
        let mut top = Table::new();
        let listen: Vec<Value> = self.listen.iter().map(|a| text(a.to_string())).collect();
        top.insert("listen".into(), Value::Array(listen));
        top.insert(
            "socket_mode".into(),
            text(format!("{:04o}", self.socket_mode)),
        );
        if let Some(group) = &self.socket_group {
            top.insert("socket_group".into(), text(&group.name));
        }
        top.insert("data_dir".into(), text(self.data_dir.display().to_string()));
        top.insert("workers".into(), number(self.workers as u64));
        top.insert("kill_grace".into(), duration(self.kill_grace));
        top.insert("shutdown_grace".into(), duration(self.shutdown_grace));
        top.insert("max_body".into(), size(self.max_body));
        top.insert("max_upload".into(), size(self.max_upload));
        top.insert("max_output".into(), size(self.max_output));
        let on_interrupted = match self.on_interrupted {
            OnInterrupted::Requeue => "requeue",
            OnInterrupted::Fail => "fail",
        };
        top.insert("on_interrupted".into(), text(on_interrupted));
        top.insert("shell".into(), text(self.shell.display().to_string()));
        top.insert("backoff".into(), duration(self.backoff));
        top.insert("max_backoff".into(), duration(self.max_backoff));
        top.insert("log".into(), text(&self.log));
        let log_format = match self.log_format {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        };
        top.insert("log_format".into(), text(log_format));
        let durability = match self.durability {
            Durability::Fsync => "fsync",
            Durability::Relaxed => "relaxed",
        };
        top.insert("durability".into(), text(durability));
        top.insert("flush_interval".into(), duration(self.flush_interval));
        if let Some(n) = self.default_concurrency {
            top.insert("default_concurrency".into(), number(n as u64));
        }
        top.insert("max_queued".into(), number(self.max_queued));
        if let Some(n) = self.max_connections {
            top.insert("max_connections".into(), number(n as u64));
        }
        if let Some(n) = self.max_streams {
            top.insert("max_streams".into(), number(n as u64));
        }
        top.insert("max_uploads".into(), number(self.max_uploads as u64));
        top.insert("retention".into(), duration(self.retention));
        top.insert("keep_finished".into(), number(self.keep_finished));

        let mut auth = Table::new();
        if let Some(group) = &self.auth.admin_group {
            auth.insert("admin_group".into(), text(&group.name));
        }
        let tokens: Vec<Value> = self
            .auth
            .tokens
            .iter()
            .map(|t| {
                let mut token = Table::new();
                token.insert("name".into(), text(&t.name));
                token.insert("role".into(), text(t.role.to_string()));
                token.insert("token".into(), text(HIDDEN));
                if let Some(user) = &t.run_as {
                    token.insert("run_as".into(), text(&user.name));
                }
                Value::Table(token)
            })
            .collect();
        if !tokens.is_empty() {
            auth.insert("tokens".into(), Value::Array(tokens));
        }
        top.insert("auth".into(), Value::Table(auth));

        let mut server = Table::new();
        server.insert("origins".into(), strings(&self.server.origins));
        server.insert("hosts".into(), strings(&self.server.hosts));
        top.insert("server".into(), Value::Table(server));

        let mut jobs = Table::new();
        if let Some(user) = &self.jobs.user {
            jobs.insert("user".into(), text(&user.name));
        }
        jobs.insert("allow_root".into(), Value::Boolean(self.jobs.allow_root));
        jobs.insert("inherit_env".into(), strings(&self.jobs.inherit_env));
        if !self.jobs.limits.is_empty() {
            jobs.insert("limits".into(), limits(&self.jobs.limits.view()));
        }
        top.insert("jobs".into(), Value::Table(jobs));

        let mut store = Table::new();
        match &self.store {
            super::StoreSettings::Sled => {
                store.insert("backend".into(), text("sled"));
            }
            super::StoreSettings::Postgres(pg) => {
                store.insert("backend".into(), text("postgres"));
                // The URL may hold a password.
                store.insert("url".into(), text(HIDDEN));
                store.insert("node".into(), text(&pg.node));
                store.insert("lease".into(), duration(pg.lease));
            }
        }
        top.insert("store".into(), Value::Table(store));

        let mut queues = Table::new();
        for (name, queue) in &self.queues {
            let mut q = Table::new();
            if let Some(n) = queue.concurrency {
                q.insert("concurrency".into(), number(n as u64));
            }
            if let Some(l) = &queue.limits {
                q.insert("limits".into(), limits(l));
            }
            queues.insert(name.clone(), Value::Table(q));
        }
        if !queues.is_empty() {
            top.insert("queues".into(), Value::Table(queues));
        }
        toml::to_string(&top).unwrap_or_default()
    }
}

fn text(s: impl Into<String>) -> Value {
    Value::String(s.into())
}

fn number(n: u64) -> Value {
    Value::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

fn strings(items: &[String]) -> Value {
    Value::Array(items.iter().map(text).collect())
}

/// A duration as the file takes it (`"1h 30m"`).
fn duration(d: Duration) -> Value {
    text(humantime::format_duration(d).to_string())
}

/// A size as the file takes it (`"64 MiB"`).
fn size(bytes: u64) -> Value {
    text(bytesize::ByteSize::b(bytes).display().iec().to_string())
}

/// A `limits` table as written in the config.
fn limits(l: &crate::resources::LimitsArg) -> Value {
    Value::try_from(l).unwrap_or_else(|_| Value::Table(Table::new()))
}
