#include "textflag.h"

// func prefetchw(p unsafe.Pointer, n uintptr)
TEXT ·prefetchw(SB),NOSPLIT,$0-16
	MOVQ	p+0(FP), AX
	MOVQ	n+8(FP), CX
	LEAQ	-1(AX)(CX*1), CX // the last byte
	ANDQ	$-64, CX         // its line
loop:
	BYTE	$0x0F; BYTE $0x0D; BYTE $0x08 // PREFETCHW (AX)
	ADDQ	$64, AX
	CMPQ	AX, CX
	JLS	loop
	BYTE	$0x0F; BYTE $0x0D; BYTE $0x09 // PREFETCHW (CX): the last line, if the loop stepped over it
	RET

// func cpuidPrefetchw() bool: CPUID.80000001H:ECX.PRFCHW[bit 8]
TEXT ·cpuidPrefetchw(SB),NOSPLIT,$0-1
	MOVL	$0x80000000, AX
	CPUID
	CMPL	AX, $0x80000001
	JB	no
	MOVL	$0x80000001, AX
	XORL	CX, CX
	CPUID
	SHRL	$8, CX
	ANDL	$1, CX
	MOVB	CX, ret+0(FP)
	RET
no:
	MOVB	$0, ret+0(FP)
	RET
