//! How the one knob table of [`super::knobs`] becomes code: the `knob_table!` macro.
//!
//! From each entry the macro makes the settings field (its doc is the entry's meaning), its
//! default (in `LinkSettings::DEFAULT`), its range constant, its name in
//! `REQUIRED_VARIABLES` or `OPTIONAL_VARIABLES`, its `Knob` in `KNOBS` (what
//! `check-config` prints and the README's table shows), and its read in `Draft::read`
//! (parse and range check, through a `Source`).

/// Turns the knob table into the settings structs, their defaults, the range constants,
/// the variable lists, the `Knob` descriptors and the function that reads them all.
///
/// An entry is its meaning as doc comments, then
/// `"name" field: Type [= default], Form [RANGE(min, max) | ("what")];`. `Form` is one of
/// the forms of [`super::value`]; `RANGE(min, max)` names the range constant made on the
/// struct (`Seconds`, `Bytes`, `Count`, `Port`), `("what")` says what a `Text` names.
/// The required variables have no default; the optional ones of `LinkSettings` fill the
/// link, those of `Settings` the rest. `check-config` lists the sections in this order.
macro_rules! knob_table {
    (
        required in Settings {$(
            $(#[doc = $rdoc:literal])+
            $rname:literal $rfield:ident: $rty:ty,
                $rform:ident $($rrange:ident($($rarg:expr),*))? $(($rwhat:literal))?;
        )*}
        optional in LinkSettings {$(
            $(#[doc = $ldoc:literal])+
            $lname:literal $lfield:ident: $lty:ty = $ldefault:expr,
                $lform:ident $($lrange:ident($($larg:expr),*))? $(($lwhat:literal))?;
        )*}
        optional in Settings {$(
            $(#[doc = $odoc:literal])+
            $oname:literal $ofield:ident: $oty:ty = $odefault:expr,
                $oform:ident $($orange:ident($($oarg:expr),*))? $(($owhat:literal))?;
        )*}
    ) => {
        /// The whole configuration of the daemon.
        #[derive(Debug, Clone, PartialEq)]
        pub struct Settings {
            $(
                #[doc = concat!("`", $rname, "`:", $($rdoc),+, ".")]
                pub $rfield: $rty,
            )*
            $(
                #[doc = concat!("`", $oname, "`:", $($odoc),+, ".")]
                pub $ofield: $oty,
            )*
            /// The knobs of one link.
            pub link: LinkSettings,
        }

        /// Everything one peer link needs to know (PROTOCOL.md 2.3).
        #[derive(Debug, Clone, PartialEq)]
        pub struct LinkSettings {
            $(
                #[doc = concat!("`", $lname, "`:", $($ldoc),+, ".")]
                pub $lfield: $lty,
            )*
        }

        impl LinkSettings {
            /// The defaults of PROTOCOL.md 2.3, usable in a `const` (e.g.
            /// `LinkSettings::DEFAULT.max_reply`).
            pub const DEFAULT: LinkSettings = LinkSettings { $($lfield: $ldefault,)* };
        }

        impl Default for LinkSettings {
            /// The defaults of PROTOCOL.md 2.3, [`LinkSettings::DEFAULT`].
            fn default() -> Self {
                Self::DEFAULT
            }
        }

        /// The valid range of every numeric knob: a value outside it is an error at load
        /// (`file:line: knob: value is out of range (min to max unit)`), as an unparsable one
        /// is.
        impl Settings {
            $(knob_table!(@range $rname, $rform $($rrange($($rarg),*))? $(($rwhat))?);)*
            $(knob_table!(@range $oname, $oform $($orange($($oarg),*))? $(($owhat))?);)*
        }

        /// The valid range of every numeric knob of a link (see [`Settings`]).
        impl LinkSettings {
            $(knob_table!(@range $lname, $lform $($lrange($($larg),*))? $(($lwhat))?);)*
        }

        /// The required variables of PROTOCOL.md 2.1, in the order they are checked.
        pub const REQUIRED_VARIABLES: [&str; knob_table!(@count $($rname)*)] = [$($rname),*];

        /// The optional knobs of PROTOCOL.md 2.3, in the order [`Settings::describe`] lists
        /// them.
        pub const OPTIONAL_VARIABLES: [&str; knob_table!(@count $($lname)* $($oname)*)] =
            [$($lname,)* $($oname),*];

        /// Every knob, required ones first, in the order [`Settings::describe`] lists them.
        pub static KNOBS: &[Knob] = &[
            $(knob_table!(@knob $rname, [$($rdoc)+], $rty,
                [Settings, $rform $($rrange($($rarg),*))? $(($rwhat))?],
                |settings| &settings.$rfield),)*
            $(knob_table!(@knob $lname, [$($ldoc)+], $lty,
                [LinkSettings, $lform $($lrange($($larg),*))? $(($lwhat))?],
                |settings| &settings.link.$lfield, $ldefault),)*
            $(knob_table!(@knob $oname, [$($odoc)+], $oty,
                [Settings, $oform $($orange($($oarg),*))? $(($owhat))?],
                |settings| &settings.$ofield, $odefault),)*
        ];

        /// The settings as read, before every required variable is known to be there: a
        /// required one is `None` when it is missing or bad.
        pub(super) struct Draft {
            $(
                #[doc = concat!("`", $rname, "`, if it was read.")]
                pub $rfield: Option<$rty>,
            )*
            $(
                #[doc = concat!("`", $oname, "`.")]
                pub $ofield: $oty,
            )*
            /// The knobs of one link.
            pub link: LinkSettings,
        }

        impl Draft {
            /// Every knob read from `source`, in the table's order (the source records
            /// what is missing or bad).
            pub(super) fn read(source: &mut impl Source) -> Draft {
                $(
                    let $rfield = source.required::<$rty>(
                        $rname,
                        &knob_table!(@form [Settings, $rform $($rrange($($rarg),*))? $(($rwhat))?]),
                    );
                )*
                let link = LinkSettings {$(
                    $lfield: source.optional::<$lty>(
                        $lname,
                        &knob_table!(@form
                            [LinkSettings, $lform $($lrange($($larg),*))? $(($lwhat))?]),
                        $ldefault,
                    ),
                )*};
                $(
                    let $ofield = source.optional::<$oty>(
                        $oname,
                        &knob_table!(@form [Settings, $oform $($orange($($oarg),*))? $(($owhat))?]),
                        $odefault,
                    );
                )*
                Draft { $($rfield,)* $($ofield,)* link }
            }

            /// The settings, if every required variable was read.
            pub(super) fn settings(self) -> Option<Settings> {
                Some(Settings {
                    $($rfield: self.$rfield?,)*
                    $($ofield: self.$ofield,)*
                    link: self.link,
                })
            }
        }
    };

    // The range constant of an entry that names one.
    (@range $name:literal, $form:ident $range:ident($($arg:expr),*)) => {
        #[doc = concat!("The valid values of `", $name, "`.")]
        pub const $range: Range<knob_table!(@wide $form)> = $form::range($($arg),*);
    };
    (@range $name:literal, $form:ident $(($what:literal))?) => {};

    // The type a form's range is written in.
    (@wide Seconds) => { Duration };
    (@wide $form:ident) => { u64 };

    // The form value of an entry.
    (@form [$owner:ident, $form:ident $range:ident($($arg:expr),*)]) => { $form($owner::$range) };
    (@form [$owner:ident, $form:ident($what:literal)]) => { $form($what) };
    (@form [$owner:ident, $form:ident]) => { $form };

    // The descriptor of an entry: `$field` finds its value in some settings; a required
    // variable has no default.
    (
        @knob $name:literal, [$($doc:literal)+], $ty:ty, $form:tt, $field:expr
        $(, $default:expr)?
    ) => {
        Knob {
            name: $name,
            required: knob_table!(@required $($default)?),
            meaning: concat!($($doc),+).trim_ascii(),
            valid: || <_ as Form<$ty>>::valid(&knob_table!(@form $form)),
            default: || {
                let default: Option<$ty> = knob_table!(@some $($default)?);
                default.map(|value| <_ as Form<$ty>>::write(&knob_table!(@form $form), &value))
            },
            value: |settings| {
                let field: fn(&Settings) -> &$ty = $field;
                <_ as Form<$ty>>::write(&knob_table!(@form $form), field(settings))
            },
        }
    };
    (@required) => { true };
    (@required $default:expr) => { false };
    (@some) => { None };
    (@some $default:expr) => { Some($default) };

    // How many names.
    (@count $($name:literal)*) => { <[()]>::len(&[$(knob_table!(@unit $name)),*]) };
    (@unit $name:literal) => { () };
}

pub(super) use knob_table;
