//! Prepared statements on the wire: COM_STMT_EXECUTE parsing (null bitmap,
//! parameter types kept from the previous execute, long data), the
//! prepare-OK packet, and binary result rows. Pure functions over bytes.

use super::codec::put_lenenc_bytes;
use mysql_async::Value;
use mysql_common::constants::{ColumnFlags, ColumnType};
use mysql_common::io::ParseBuf;
use mysql_common::proto::MyDeserialize;
use mysql_common::value::{BinValue, ValueDeserializer};
use std::collections::HashMap;

/// The prepare-OK packet.
pub fn prepare_ok(stmt_id: u32, columns: u16, params: u16) -> Vec<u8> {
    let mut b = vec![0x00];
    b.extend_from_slice(&stmt_id.to_le_bytes());
    b.extend_from_slice(&columns.to_le_bytes());
    b.extend_from_slice(&params.to_le_bytes());
    b.push(0);
    b.extend_from_slice(&0u16.to_le_bytes());
    b
}

/// A COM_STMT_EXECUTE, parsed.
#[derive(Debug)]
pub struct Execute {
    pub stmt_id: u32,
    pub params: Vec<Value>,
}

fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    if b.len() < n {
        return Err("COM_STMT_EXECUTE is truncated".into());
    }
    let (head, rest) = b.split_at(n);
    *b = rest;
    Ok(head)
}

/// The statement id of a COM_STMT_EXECUTE body (after the command byte).
pub fn execute_stmt_id(body: &[u8]) -> Result<u32, String> {
    let mut b = body;
    Ok(u32::from_le_bytes(
        take(&mut b, 4)?.try_into().expect("4 bytes"),
    ))
}

/// Parse a COM_STMT_EXECUTE body for a statement with `n` parameters.
/// `types` holds the types bound by the previous execute and is updated.
pub fn parse_execute(
    body: &[u8],
    n: usize,
    types: &mut Vec<(ColumnType, ColumnFlags)>,
    long_data: &mut HashMap<u16, Vec<u8>>,
) -> Result<Execute, String> {
    let mut b = body;
    let stmt_id = u32::from_le_bytes(take(&mut b, 4)?.try_into().expect("4 bytes"));
    let _flags = take(&mut b, 1)?;
    let _iterations = take(&mut b, 4)?;
    let mut params = Vec::with_capacity(n);
    if n == 0 {
        return Ok(Execute { stmt_id, params });
    }
    let bitmap = take(&mut b, n.div_ceil(8))?.to_vec();
    let bound = take(&mut b, 1)?[0];
    if bound == 1 {
        types.clear();
        for _ in 0..n {
            let t = take(&mut b, 2)?;
            let ty = ColumnType::try_from(t[0])
                .ok()
                .filter(|ty| bindable(*ty))
                .ok_or_else(|| format!("parameter type {} cannot be bound", t[0]))?;
            let flags = if t[1] & 0x80 != 0 {
                ColumnFlags::UNSIGNED_FLAG
            } else {
                ColumnFlags::empty()
            };
            types.push((ty, flags));
        }
    }
    if types.len() != n {
        return Err("parameter types were never sent for this statement".into());
    }
    let mut buf = ParseBuf(b);
    for (i, (ty, flags)) in types.iter().enumerate() {
        if let Some(data) = long_data.remove(&(i as u16)) {
            params.push(Value::Bytes(data));
            continue;
        }
        if bitmap[i / 8] & (1 << (i % 8)) != 0 {
            params.push(Value::NULL);
            continue;
        }
        let v = ValueDeserializer::<BinValue>::deserialize((*ty, *flags), &mut buf)
            .map_err(|e| format!("parameter {} does not decode: {e}", i + 1))?;
        params.push(v.0);
    }
    Ok(Execute { stmt_id, params })
}

/// A type a client may bind a parameter as. The server-internal temporal
/// types (`TIMESTAMP2`, `DATETIME2`, `TIME2`) and anything unknown are
/// refused before a value is decoded.
fn bindable(ty: ColumnType) -> bool {
    use ColumnType::*;
    matches!(
        ty,
        MYSQL_TYPE_STRING
            | MYSQL_TYPE_VAR_STRING
            | MYSQL_TYPE_BLOB
            | MYSQL_TYPE_TINY_BLOB
            | MYSQL_TYPE_MEDIUM_BLOB
            | MYSQL_TYPE_LONG_BLOB
            | MYSQL_TYPE_SET
            | MYSQL_TYPE_ENUM
            | MYSQL_TYPE_DECIMAL
            | MYSQL_TYPE_VARCHAR
            | MYSQL_TYPE_BIT
            | MYSQL_TYPE_NEWDECIMAL
            | MYSQL_TYPE_GEOMETRY
            | MYSQL_TYPE_JSON
            | MYSQL_TYPE_TINY
            | MYSQL_TYPE_SHORT
            | MYSQL_TYPE_YEAR
            | MYSQL_TYPE_LONG
            | MYSQL_TYPE_INT24
            | MYSQL_TYPE_LONGLONG
            | MYSQL_TYPE_FLOAT
            | MYSQL_TYPE_DOUBLE
            | MYSQL_TYPE_TIMESTAMP
            | MYSQL_TYPE_DATE
            | MYSQL_TYPE_NEWDATE
            | MYSQL_TYPE_DATETIME
            | MYSQL_TYPE_TIME
            | MYSQL_TYPE_NULL
    )
}

/// One binary-protocol result row for `types`.
pub fn binary_row(types: &[ColumnType], values: &[Value]) -> Vec<u8> {
    let mut b = vec![0x00];
    let bitmap_at = b.len();
    b.resize(bitmap_at + (types.len() + 7 + 2) / 8, 0);
    for (i, (ty, v)) in types.iter().zip(values).enumerate() {
        if *v == Value::NULL {
            let bit = i + 2;
            b[bitmap_at + bit / 8] |= 1 << (bit % 8);
            continue;
        }
        put_binary(&mut b, *ty, v);
    }
    b
}

fn as_i64(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        Value::UInt(u) => *u as i64,
        Value::Float(f) => *f as i64,
        Value::Double(f) => *f as i64,
        Value::Bytes(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0),
        _ => 0,
    }
}

fn as_f64(v: &Value) -> f64 {
    match v {
        Value::Float(f) => f64::from(*f),
        Value::Double(f) => *f,
        Value::Int(i) => *i as f64,
        Value::UInt(u) => *u as f64,
        Value::Bytes(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0.0),
        _ => 0.0,
    }
}

fn put_binary(b: &mut Vec<u8>, ty: ColumnType, v: &Value) {
    use ColumnType::*;
    match ty {
        MYSQL_TYPE_TINY => b.push(as_i64(v) as u8),
        MYSQL_TYPE_SHORT | MYSQL_TYPE_YEAR => {
            b.extend_from_slice(&(as_i64(v) as u16).to_le_bytes())
        }
        MYSQL_TYPE_LONG | MYSQL_TYPE_INT24 => {
            b.extend_from_slice(&(as_i64(v) as u32).to_le_bytes())
        }
        MYSQL_TYPE_LONGLONG => match v {
            Value::UInt(u) => b.extend_from_slice(&u.to_le_bytes()),
            other => b.extend_from_slice(&as_i64(other).to_le_bytes()),
        },
        MYSQL_TYPE_FLOAT => b.extend_from_slice(&(as_f64(v) as f32).to_le_bytes()),
        MYSQL_TYPE_DOUBLE => b.extend_from_slice(&as_f64(v).to_le_bytes()),
        MYSQL_TYPE_DATE
        | MYSQL_TYPE_DATETIME
        | MYSQL_TYPE_TIMESTAMP
        | MYSQL_TYPE_DATETIME2
        | MYSQL_TYPE_TIMESTAMP2
        | MYSQL_TYPE_NEWDATE => match v {
            Value::Date(y, mo, d, h, mi, s, us) => {
                if *us != 0 {
                    b.push(11);
                } else if *h != 0 || *mi != 0 || *s != 0 {
                    b.push(7);
                } else {
                    b.push(4);
                }
                b.extend_from_slice(&y.to_le_bytes());
                b.extend_from_slice(&[*mo, *d]);
                if *us != 0 || *h != 0 || *mi != 0 || *s != 0 {
                    b.extend_from_slice(&[*h, *mi, *s]);
                }
                if *us != 0 {
                    b.extend_from_slice(&us.to_le_bytes());
                }
            }
            _ => b.push(0),
        },
        MYSQL_TYPE_TIME | MYSQL_TYPE_TIME2 => match v {
            Value::Time(neg, days, h, mi, s, us) => {
                b.push(if *us != 0 { 12 } else { 8 });
                b.push(u8::from(*neg));
                b.extend_from_slice(&days.to_le_bytes());
                b.extend_from_slice(&[*h, *mi, *s]);
                if *us != 0 {
                    b.extend_from_slice(&us.to_le_bytes());
                }
            }
            _ => b.push(0),
        },
        _ => match v {
            Value::Bytes(x) => put_lenenc_bytes(b, x),
            other => put_lenenc_bytes(b, other.as_sql(true).trim_matches('\'').as_bytes()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_execute_with_bound_types_nulls_and_long_data() {
        // stmt 7, flags 0, 1 iteration, 3 params: NULL bitmap marks param 2.
        let mut body = vec![7, 0, 0, 0, 0, 1, 0, 0, 0, 0b0000_0010, 1];
        body.extend_from_slice(&[ColumnType::MYSQL_TYPE_LONGLONG as u8, 0]);
        body.extend_from_slice(&[ColumnType::MYSQL_TYPE_VAR_STRING as u8, 0]);
        body.extend_from_slice(&[ColumnType::MYSQL_TYPE_BLOB as u8, 0]);
        body.extend_from_slice(&42i64.to_le_bytes());
        let mut types = Vec::new();
        let mut long = HashMap::from([(2u16, b"long".to_vec())]);
        let e = parse_execute(&body, 3, &mut types, &mut long).unwrap();
        assert_eq!(e.stmt_id, 7);
        assert_eq!(
            e.params,
            vec![Value::Int(42), Value::NULL, Value::Bytes(b"long".to_vec())]
        );
        // A second execute without types reuses them.
        let mut body = vec![7, 0, 0, 0, 0, 1, 0, 0, 0, 0b0000_0110, 0];
        body.extend_from_slice(&43i64.to_le_bytes());
        let e = parse_execute(&body, 3, &mut types, &mut HashMap::new()).unwrap();
        assert_eq!(e.params, vec![Value::Int(43), Value::NULL, Value::NULL]);
        assert!(parse_execute(&[7, 0], 1, &mut Vec::new(), &mut HashMap::new()).is_err());
    }

    /// Found by the `packets` fuzz target: a parameter bound as a
    /// server-internal type (here DATETIME2) made the decoder panic.
    #[test]
    fn refuses_parameter_types_a_client_cannot_bind() {
        for ty in [
            ColumnType::MYSQL_TYPE_DATETIME2,
            ColumnType::MYSQL_TYPE_TIMESTAMP2,
            ColumnType::MYSQL_TYPE_TIME2,
        ] {
            let mut body = vec![1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, ty as u8, 0];
            body.extend_from_slice(&[0xff; 12]);
            let e = parse_execute(&body, 1, &mut Vec::new(), &mut HashMap::new()).unwrap_err();
            assert!(e.contains("cannot be bound"), "{e}");
        }
    }

    #[test]
    fn encodes_binary_rows_with_the_null_bitmap_offset() {
        let row = binary_row(
            &[
                ColumnType::MYSQL_TYPE_LONG,
                ColumnType::MYSQL_TYPE_VAR_STRING,
                ColumnType::MYSQL_TYPE_LONGLONG,
            ],
            &[Value::Int(5), Value::NULL, Value::Int(-1)],
        );
        assert_eq!(row[0], 0);
        assert_eq!(row[1], 0b0000_1000, "NULL of column 2 is bit 3 (offset 2)");
        assert_eq!(&row[2..6], &5u32.to_le_bytes());
        assert_eq!(&row[6..14], &(-1i64).to_le_bytes());
    }
}
