//! A page as a template value that behaves like Flask-SQLAlchemy's `Pagination` in Jinja.

use std::sync::Arc;

use flagon::minijinja;
use serde::Serialize;

use super::{IterPages, Pagination, iter_pages};

impl<T: Serialize> Pagination<T> {
    /// The page as a template value that behaves like Flask-SQLAlchemy's `Pagination` in
    /// Jinja: its attributes (`page`, `pages`, `has_next`, `next_num`, `items`, …, as
    /// [serialised](Pagination#impl-Serialize-for-Pagination<T>)), the method
    /// `iter_pages(left_edge=2, left_current=2, right_current=4, right_edge=2)`, and
    /// iteration over the items, so Flask's pagination macros render unchanged.
    ///
    /// ```
    /// use flagon::minijinja::{Environment, context};
    /// use flagon_db::Pagination;
    /// let p = Pagination { page: 7, per_page: 1, max_per_page: None, total: Some(20), items: vec!["g"] };
    /// let tmpl = "{% for n in p.iter_pages(right_current=1) %}{{ n or '…' }} {% endfor %}\
    ///             {% for item in p %}[{{ item }}]{% endfor %}";
    /// let out = Environment::new().render_str(tmpl, context! { p => p.to_template_value() }).unwrap();
    /// assert_eq!(out, "1 2 … 5 6 7 8 … 19 20 [g]");
    /// ```
    pub fn to_template_value(&self) -> minijinja::Value {
        minijinja::Value::from_object(PaginationObject {
            fields: minijinja::Value::from_serialize(self),
            items: minijinja::Value::from_serialize(&self.items),
            page: self.page,
            pages: self.pages(),
        })
    }
}

/// [`Pagination::to_template_value`]'s object.
#[derive(Debug)]
struct PaginationObject {
    fields: minijinja::Value,
    items: minijinja::Value,
    page: u64,
    pages: u64,
}

impl minijinja::value::Object for PaginationObject {
    fn repr(self: &Arc<Self>) -> minijinja::value::ObjectRepr {
        minijinja::value::ObjectRepr::Iterable
    }

    fn get_value(self: &Arc<Self>, key: &minijinja::Value) -> Option<minijinja::Value> {
        self.fields.get_item(key).ok().filter(|v| !v.is_undefined())
    }

    fn enumerate(self: &Arc<Self>) -> minijinja::value::Enumerator {
        let items: Vec<minijinja::Value> = self
            .items
            .try_iter()
            .map(Iterator::collect)
            .unwrap_or_default();
        minijinja::value::Enumerator::Values(items)
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &minijinja::State<'_, '_>,
        method: &str,
        args: &[minijinja::Value],
    ) -> Result<minijinja::Value, minijinja::Error> {
        if method != "iter_pages" {
            return Err(minijinja::Error::from(minijinja::ErrorKind::UnknownMethod));
        }
        let (kwargs,): (minijinja::value::Kwargs,) = minijinja::value::from_args(args)?;
        let d = IterPages::default();
        let arg = |name: &str, default: u64| -> Result<u64, minijinja::Error> {
            Ok(kwargs.get::<Option<u64>>(name)?.unwrap_or(default))
        };
        let args = IterPages {
            left_edge: arg("left_edge", d.left_edge)?,
            left_current: arg("left_current", d.left_current)?,
            right_current: arg("right_current", d.right_current)?,
            right_edge: arg("right_edge", d.right_edge)?,
        };
        kwargs.assert_all_used()?;
        Ok(minijinja::Value::from_serialize(iter_pages(
            self.page, self.pages, args,
        )))
    }
}
