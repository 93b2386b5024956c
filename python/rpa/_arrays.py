"""Arrays of the front ends (PyTorch tensors, NumPy arrays) as what the C ABI
takes: a data pointer, an rpa dtype code, a shape and strides in elements.

Nothing is copied here: an input that is not laid out as the call needs
raises ValueError naming the argument. rpa's dtype codes are the C enum's
(include/rpa/rpa.h): F32 0, BF16 1, F16 2, FP8_E4M3 3, FP8_E5M2 4, INT8 5.
"""

F32, BF16, F16, FP8_E4M3, FP8_E5M2, INT8 = range(6)
ACT_DTYPES = (F32, BF16, F16)
NAMES = ("float32", "bfloat16", "float16", "float8_e4m3fn", "float8_e5m2", "int8")
SIZES = (4, 2, 2, 1, 1, 1)

# NumPy's names (float8 and bfloat16 from ml_dtypes) and short names.
_BY_NAME = {name: code for code, name in enumerate(NAMES)}
_BY_NAME.update({"f32": F32, "bf16": BF16, "f16": F16, "fp8_e4m3": FP8_E4M3,
                 "fp8_e5m2": FP8_E5M2})
# The index arrays' types, which are not cache or activation dtypes.
INT32, INT64 = 100, 101
_ARRAY_TYPES = dict(_BY_NAME, int32=INT32, int64=INT64)


def name_of(code):
    return {INT32: "int32", INT64: "int64"}.get(code) or NAMES[code]


def _torch():
    import sys
    return sys.modules.get("torch")


_TORCH_CODES = {}


def torch_codes():
    """torch dtype -> rpa code, once torch is imported (empty before)."""
    if not _TORCH_CODES:
        torch = _torch()
        if torch is not None:
            _TORCH_CODES.update({
                torch.float32: F32, torch.bfloat16: BF16, torch.float16: F16,
                torch.float8_e4m3fn: FP8_E4M3, torch.float8_e5m2: FP8_E5M2, torch.int8: INT8,
                torch.int32: INT32, torch.int64: INT64})
    return _TORCH_CODES


def view(obj, name, writable=False, _codes=_TORCH_CODES):
    """(data pointer, dtype code, shape) of a contiguous CPU tensor or array;
    anything else raises ValueError saying why. The torch case is the hot
    path of every call (~0.4 us a tensor): a dict lookup and four accessors."""
    try:
        code = _codes[obj.dtype]
    except (KeyError, AttributeError, TypeError):
        code = None
    if code is not None and obj.is_cpu and obj.is_contiguous():
        return obj.data_ptr(), code, obj.shape
    torch_codes()
    a = Array(obj, name, writable).require(name)
    return a.ptr, a.dtype, a.shape


def dtype_code(dtype, what="dtype"):
    """The rpa dtype code of a torch dtype, a NumPy dtype or a name."""
    if isinstance(dtype, type):  # a NumPy scalar type: np.float16, ml_dtypes.bfloat16
        import numpy as np
        dtype = np.dtype(dtype)
    name = getattr(dtype, "name", None)  # numpy.dtype
    if name is None:
        text = str(dtype)
        name = text[6:] if text.startswith("torch.") else text
    code = _BY_NAME.get(name)
    if code is None:
        raise ValueError(f"{what}: {dtype} is not one of rpa's dtypes "
                         "(float32, bfloat16, float16, float8_e4m3fn, float8_e5m2, int8)")
    return code


class Array:
    """One argument as the C ABI sees it."""

    __slots__ = ("obj", "ptr", "dtype", "shape", "strides", "is_torch")

    def __init__(self, obj, name, writable=False):
        torch = _torch()
        self.obj = obj
        if torch is not None and isinstance(obj, torch.Tensor):
            if obj.device.type != "cpu":
                raise ValueError(f"{name}: a tensor on {obj.device}; rpa runs on the CPU")
            self.is_torch = True
            self.ptr = obj.data_ptr()
            self.dtype = _ARRAY_TYPES.get(str(obj.dtype)[6:], -1)
            self.shape = tuple(obj.shape)
            self.strides = tuple(obj.stride())
        elif hasattr(obj, "__array_interface__"):
            iface = obj.__array_interface__
            if writable and iface["data"][1]:
                raise ValueError(f"{name}: the array is read-only, and rpa writes into it")
            self.is_torch = False
            self.ptr = iface["data"][0]
            self.dtype = _ARRAY_TYPES.get(obj.dtype.name, -1)
            self.shape = tuple(obj.shape)
            item = obj.dtype.itemsize
            self.strides = tuple(s // item for s in obj.strides)
        else:
            raise ValueError(f"{name}: {type(obj).__name__} is neither a torch.Tensor nor an array "
                             "with the NumPy array interface")
        if self.dtype < 0:
            raise ValueError(f"{name}: dtype {getattr(obj, 'dtype', '?')} is not one of rpa's "
                             "dtypes (float32, bfloat16, float16, float8_e4m3fn, float8_e5m2, "
                             "int8)")

    def contiguous(self):
        """True when the elements lie in C order without gaps."""
        expected = 1
        for size, stride in zip(reversed(self.shape), reversed(self.strides)):
            if size != 1 and stride != expected:
                return False
            expected *= size
        return True

    def require(self, name, ndim=None, dtypes=None, contiguous=True):
        if ndim is not None and len(self.shape) != ndim:
            raise ValueError(f"{name}: {len(self.shape)} dimensions {self.shape}, {ndim} expected")
        if dtypes is not None and self.dtype not in dtypes:
            allowed = ", ".join(name_of(d) for d in dtypes)
            raise ValueError(f"{name}: dtype {name_of(self.dtype)}, expected {allowed}")
        if contiguous and not self.contiguous():
            raise ValueError(f"{name}: not contiguous (strides {self.strides} for shape "
                             f"{self.shape}); rpa does not copy: pass .contiguous() / "
                             "np.ascontiguousarray")
        return self


def index_array(obj, name, code=INT32):
    """A 1-D int32 (or int64) array: a tensor or array as it is, a sequence
    copied once."""
    torch = _torch()
    if not (torch is not None and isinstance(obj, torch.Tensor)) and not hasattr(
            obj, "__array_interface__"):
        import numpy as np
        obj = np.ascontiguousarray(obj, dtype=np.int32 if code == INT32 else np.int64)
    return Array(obj, name).require(name, ndim=1, dtypes=(code,))
