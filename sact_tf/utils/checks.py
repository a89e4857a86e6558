"""Argument checks shared by the library's entry points."""


def check_int(name, value, minimum=1, integer_types=(int,)):
  """Raises unless `value` is an integer (not a bool) of at least `minimum`.

  Args:
    name: str, the argument's name, used in the message.
    value: the value received.
    minimum: int. Defaults to 1.
    integer_types: tuple of the accepted types. Defaults to `(int,)`.

  Raises:
    ValueError: one line naming the value, e.g. `num_splits must be a
      positive int, received num_splits=0`.
  """
  if (isinstance(value, bool) or not isinstance(value, integer_types) or
      value < minimum):
    meaning = "a positive int" if minimum == 1 else f"an int >= {minimum}"
    raise ValueError(f"{name} must be {meaning}, received {name}={value!r}")
