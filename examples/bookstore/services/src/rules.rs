//! Pure business rules: identifiers, the simulated payment, pricing.

/// Usernames: 3–32 of `a-z 0-9 _ . -`, starting with a letter or digit.
pub fn valid_username(u: &str) -> bool {
    (3..=32).contains(&u.len())
        && u.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && u.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c))
}

/// Client-chosen order ids (the key that makes `PUT /orders/{id}` idempotent):
/// 1–64 of `A-Z a-z 0-9 _ -`.
pub fn valid_order_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[derive(Debug, PartialEq, Eq)]
pub enum Payment {
    Approved { last4: String },
    Declined { last4: String },
}

/// The simulated card processor. Deterministic so tests and the load
/// generator know the outcome: a well-formed card (12–19 digits, spaces and
/// dashes ignored) is approved unless it ends in 0000.
pub fn charge(card_number: &str) -> Result<Payment, String> {
    let digits: String = card_number
        .chars()
        .filter(|c| *c != ' ' && *c != '-')
        .collect();
    if !(12..=19).contains(&digits.len()) || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err("card_number must have 12 to 19 digits".into());
    }
    let last4 = digits[digits.len() - 4..].to_string();
    Ok(if !approves(&last4) {
        Payment::Declined { last4 }
    } else {
        Payment::Approved { last4 }
    })
}

/// The decision itself, from the last four digits alone: orders store only
/// those, and a resumed order must reach the same outcome.
pub fn approves(last4: &str) -> bool {
    last4 != "0000"
}

/// Total of `(unit price in cents, quantity)` lines; None on overflow or a
/// negative line (which the database constraints forbid anyway).
pub fn order_total(lines: &[(i64, i32)]) -> Option<i64> {
    lines.iter().try_fold(0i64, |acc, &(price, qty)| {
        if price < 0 || qty < 0 {
            return None;
        }
        acc.checked_add(price.checked_mul(i64::from(qty))?)
    })
}

/// Cents as a price for people: 1234 → "12.34".
pub fn format_price(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    format!("{sign}{}.{:02}", c / 100, c % 100)
}

/// Quantities a cart line may hold.
pub const MAX_QUANTITY: i32 = 100;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert!(valid_username("alice"));
        assert!(valid_username("u-1.b_2"));
        assert!(!valid_username("al"));
        assert!(!valid_username("Alice"));
        assert!(!valid_username("-alice"));
        assert!(!valid_username("a/b/c"));
        assert!(!valid_username(&"a".repeat(33)));
    }

    #[test]
    fn order_ids() {
        assert!(valid_order_id("3f2b-AA_9"));
        assert!(!valid_order_id(""));
        assert!(!valid_order_id("a b"));
        assert!(!valid_order_id("../x"));
        assert!(!valid_order_id(&"a".repeat(65)));
    }

    #[test]
    fn payment_rule() {
        assert_eq!(
            charge("4111 1111 1111 1111"),
            Ok(Payment::Approved {
                last4: "1111".into()
            })
        );
        assert_eq!(
            charge("4111-1111-1111-0000"),
            Ok(Payment::Declined {
                last4: "0000".into()
            })
        );
        assert!(charge("1234").is_err());
        assert!(charge("4111x111111111111").is_err());
        assert!(charge("").is_err());
        assert!(charge(&"1".repeat(20)).is_err());
    }

    #[test]
    fn pricing() {
        assert_eq!(order_total(&[(1999, 2), (500, 1)]), Some(4498));
        assert_eq!(order_total(&[]), Some(0));
        assert_eq!(order_total(&[(i64::MAX, 2)]), None);
        assert_eq!(order_total(&[(-1, 1)]), None);
        assert_eq!(format_price(1234), "12.34");
        assert_eq!(format_price(5), "0.05");
        assert_eq!(format_price(-250), "-2.50");
    }
}
