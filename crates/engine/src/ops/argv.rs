//! An operation's arguments as a struct with named fields, declared with [`argv!`]: the one place
//! that puts them in the order its Lua reads them. The field names are the Lua's names too: the
//! library binds each to a local of that name at the top of the operation's body
//! (`functions.rs`), and a test checks every operation's `-- ARGV:` header against them, so a
//! Rust call and its Lua cannot disagree on which argument is which.

/// One operation's arguments (the fields of an [`argv!`] struct), in the order Lua reads them.
pub(crate) trait Argv {
    /// The names of the arguments, in order.
    const ARGV: &'static [&'static str];
    /// The name of a list that follows them (pairs, triples) if the operation takes one.
    const REST: Option<&'static str>;
    fn into_argv(self) -> Vec<String>;
}

/// One argument as Lua receives it: every FCALL argument is a string.
pub(crate) trait Arg {
    fn arg(self) -> String;
}

impl Arg for &str {
    fn arg(self) -> String {
        self.to_string()
    }
}

impl Arg for String {
    fn arg(self) -> String {
        self
    }
}

/// The Lua side tests flags with `== '1'`.
impl Arg for bool {
    fn arg(self) -> String {
        if self { "1" } else { "0" }.to_string()
    }
}

/// `''` stands for "none" (e.g. the queue's own priority).
impl<T: Arg> Arg for Option<T> {
    fn arg(self) -> String {
        self.map(Arg::arg).unwrap_or_default()
    }
}

macro_rules! numeric_args {
    ($($t:ty),*) => {
        $(impl Arg for $t {
            fn arg(self) -> String {
                self.to_string()
            }
        })*
    };
}
numeric_args!(u32, u64, i32, usize);

/// Declares an operation's argument struct and its [`Argv`]: `name: type,` per argument in
/// Lua's order, then optionally `..rest,` for a list that follows them (a `Vec<String>`).
macro_rules! argv {
    (
        $(#[$meta:meta])*
        struct $name:ident $(<$lt:lifetime>)? {
            $($field:ident: $ty:ty,)*
            $(..$rest:ident,)?
        }
    ) => {
        $(#[$meta])*
        pub(crate) struct $name $(<$lt>)? {
            $($field: $ty,)*
            $($rest: Vec<String>,)?
        }

        impl $(<$lt>)? $crate::ops::argv::Argv for $name $(<$lt>)? {
            const ARGV: &'static [&'static str] = &[$(stringify!($field)),*];
            const REST: Option<&'static str> = $crate::ops::argv::argv!(@rest $($rest)?);

            fn into_argv(self) -> Vec<String> {
                #[allow(unused_mut)]
                let mut argv = vec![$($crate::ops::argv::Arg::arg(self.$field)),*];
                $(argv.extend(self.$rest);)?
                argv
            }
        }
    };
    (@rest) => { None };
    (@rest $rest:ident) => { Some(stringify!($rest)) };
}
pub(crate) use argv;

#[cfg(test)]
mod tests {
    use super::*;

    argv! {
        struct Example<'a> {
            who: &'a str,
            on: bool,
            priority: Option<i32>,
            ..pairs,
        }
    }

    #[test]
    fn fields_are_written_in_order_then_the_rest() {
        assert_eq!(Example::ARGV, ["who", "on", "priority"]);
        assert_eq!(Example::REST, Some("pairs"));
        let e = Example { who: "agent", on: true, priority: None, pairs: vec!["p".into(), "1".into()] };
        assert_eq!(e.into_argv(), ["agent", "1", "", "p", "1"]);
    }
}
