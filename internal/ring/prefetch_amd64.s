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

// func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)
TEXT ·cpuid(SB),NOSPLIT,$0-24
	MOVL	eaxArg+0(FP), AX
	MOVL	ecxArg+4(FP), CX
	CPUID
	MOVL	AX, eax+8(FP)
	MOVL	BX, ebx+12(FP)
	MOVL	CX, ecx+16(FP)
	MOVL	DX, edx+20(FP)
	RET
